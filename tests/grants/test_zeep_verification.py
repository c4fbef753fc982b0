"""Graduate verification against a served gateway (``gateway serve``) with the real zeep clients.

The university and the department file the graduate's registration through the SDK; the graduate
activates and grants in the gateway's own database; the hukou office verifies with
``GatewayClient`` and with zeep's generated operation, which reads the answer from the WSDL.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
import zeep
from lxml import etree
from sqlalchemy.orm import Session, sessionmaker

from gateway.graduates import accounts
from gateway.graduates.models import GraduateAccount
from gateway.grants import services
from gateway.grants.tokens import GrantTokens
from gateway.privacy import IdentityHasher
from gateway.sdk.client import GatewayClient, GatewayRefusal
from gateway.sdk.zeep_plugins import GatewaySignature
from gateway.settings import Settings
from gateway.store.db import connect, session_factory, transaction
from tests.conftest import EDUCATION_DEPARTMENT, HUKOU_OFFICE, UNIVERSITY, credentials
from tests.graduates.helpers import LI_MING, PASSWORD, WANG_HONG, Graduate, filing_document, registration_document
from tests.grants.helpers import verification_request

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sessions(served_home: Path, gateway_url: str) -> Iterator[sessionmaker[Session]]:
    """The served gateway's own database (SQLite, shared with the serving process)."""
    engine = connect(Settings.from_env({}, base_dir=served_home).database_url)
    yield session_factory(engine)
    engine.dispose()


def client(gateway_url: str, served_home: Path, participant: str) -> GatewayClient:
    return GatewayClient.from_keys(gateway_url, participant, served_home / "keys")


def filed_and_activated(
    gateway_url: str, served_home: Path, sessions: sessionmaker[Session], graduate: Graduate
) -> GraduateAccount:
    client(gateway_url, served_home, UNIVERSITY).send(registration_document(graduate), recipient=EDUCATION_DEPARTMENT)
    client(gateway_url, served_home, EDUCATION_DEPARTMENT).send(filing_document(graduate), recipient=UNIVERSITY)
    hasher = IdentityHasher.from_file(served_home / "keys" / "secrets" / "identity-hash.key")
    with transaction(sessions) as session:
        return accounts.activate(
            session,
            hasher,
            graduate.identity_number,
            graduate.name,
            graduate.verification_number,
            PASSWORD,
            datetime.now(UTC),
        )


def new_grant(served_home: Path, sessions: sessionmaker[Session], account: GraduateAccount, **changes: object) -> str:
    tokens = GrantTokens.from_keys_dir(served_home / "keys")
    with transaction(sessions) as session:
        issued = services.create_grant(
            session,
            tokens,
            account,
            **{  # type: ignore[arg-type]
                "verifier_id": HUKOU_OFFICE,
                "facts": ["identity_match", "education", "destination"],
                "purpose": "settlement",
                "purpose_text": None,
                "now": datetime.now(UTC),
                **changes,
            },
        )
    return issued.token


def test_the_sdk_client_gets_the_granted_facts_and_the_faults(
    gateway_url: str, served_home: Path, sessions: sessionmaker[Session]
) -> None:
    account = filed_and_activated(gateway_url, served_home, sessions, LI_MING)
    token = new_grant(served_home, sessions, account, max_uses=2)
    hukou = client(gateway_url, served_home, HUKOU_OFFICE)
    request = verification_request(token, facts=("education", "destination"))
    sent = hukou.send(request, recipient=EDUCATION_DEPARTMENT)
    assert sent.receipt.status == "accepted" and sent.receipt.message_id == sent.message_id
    answer = sent.verification
    assert answer is not None and answer.requester == HUKOU_OFFICE
    assert answer.identity_match is None and answer.archive is None  # not asked
    assert answer.education is not None and answer.education.major == "计算机科学与技术"
    assert answer.destination is not None and answer.destination.code == "10"
    with pytest.raises(GatewayRefusal) as caught:
        hukou.send(verification_request(token, facts=("archive",)), recipient=EDUCATION_DEPARTMENT)
    assert caught.value.code == "AUTHORISATION_INSUFFICIENT_SCOPE"
    assert hukou.send(request, recipient=EDUCATION_DEPARTMENT).verification is not None  # the second use
    with pytest.raises(GatewayRefusal) as caught:
        hukou.send(request, recipient=EDUCATION_DEPARTMENT)
    assert caught.value.code == "AUTHORISATION_EXHAUSTED"
    revocable = new_grant(served_home, sessions, account, max_uses=5)
    hukou.send(verification_request(revocable), recipient=EDUCATION_DEPARTMENT)
    with transaction(sessions) as session:
        [summary] = [s for s in services.grants_of(session, account, datetime.now(UTC)) if s.grant.max_uses == 5]
        services.revoke(session, account, summary.grant.id, datetime.now(UTC))
    with pytest.raises(GatewayRefusal) as caught:
        hukou.send(verification_request(revocable), recipient=EDUCATION_DEPARTMENT)
    assert caught.value.code == "AUTHORISATION_REVOKED"
    with pytest.raises(GatewayRefusal) as caught:
        hukou.send(verification_request(None), recipient=EDUCATION_DEPARTMENT)
    assert caught.value.code == "AUTHORISATION_MISSING"


def test_zeeps_own_operation_reads_the_answer_from_the_wsdl(
    gateway_url: str, served_home: Path, sessions: sessionmaker[Session]
) -> None:
    account = filed_and_activated(gateway_url, served_home, sessions, WANG_HONG)
    token = new_grant(served_home, sessions, account)
    found = credentials(served_home / "keys", HUKOU_OFFICE)
    anchors = (served_home / "keys" / "ca" / "ca.cert.pem",)
    plain = zeep.Client(f"{gateway_url}/soap?wsdl", wsse=GatewaySignature(found.key, found.certificate, anchors))
    element = plain.get_element("{urn:gradex:verification:1}GraduateVerificationRequest")
    document = verification_request(token, graduate=WANG_HONG, facts=("identity_match", "education"))
    parsed = element.parse(etree.fromstring(document), plain.wsdl.types)
    routing = plain.get_element("{urn:gradex:gateway:1}Routing")(
        MessageId=str(uuid.uuid4()),
        Sender=HUKOU_OFFICE,
        Recipient={"Participant": EDUCATION_DEPARTMENT},
        Service={"Name": "GraduateVerificationRequest", "Version": "1"},
        CreatedAt=datetime.now(UTC),
    )
    result = plain.service.GraduateVerificationRequest(**{k: parsed[k] for k in parsed}, _soapheaders=[routing])
    response = result.GraduateVerificationResponse
    assert response.Facts.IdentityMatch is True
    assert response.Facts.Education.School.Name == "北京示范大学"
    assert response.Facts.Destination is None and response.Facts.Archive is None
    assert response.Subject.Name == "王小红"
    assert result.Receipt.Status == "accepted" and result.Receipt.Sender == HUKOU_OFFICE


def test_two_concurrent_verifiers_of_a_one_use_grant_one_is_answered(
    gateway_url: str, served_home: Path, sessions: sessionmaker[Session]
) -> None:
    graduate = Graduate("110108200110120010", "赵磊", "REG-2025-000789", "ZD11000020250009012", "HY2025BJ9K3M4N5P")
    account = filed_and_activated(gateway_url, served_home, sessions, graduate)
    token = new_grant(served_home, sessions, account)
    document = verification_request(token, graduate=graduate)
    senders = [client(gateway_url, served_home, HUKOU_OFFICE) for _ in range(2)]
    for sender in senders:
        assert sender.zeep.wsdl is not None  # load the WSDL before the race

    def verify(sender: GatewayClient) -> str:
        try:
            sender.send(document, recipient=EDUCATION_DEPARTMENT)
        except GatewayRefusal as refusal:
            return refusal.code
        return "answered"

    with ThreadPoolExecutor(2) as pool:
        assert sorted(pool.map(verify, senders)) == ["AUTHORISATION_EXHAUSTED", "answered"]


def test_gateway_send_prints_the_granted_facts(
    gateway_url: str, served_home: Path, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    graduate = Graduate("110108200203030014", "孙悦", "REG-2025-000901", "ZD11000020250009901", "HY2025BJ5T6U7V8W")
    account = filed_and_activated(gateway_url, served_home, sessions, graduate)
    token = new_grant(served_home, sessions, account, facts=["education"])
    request = tmp_path / "verification.xml"
    request.write_bytes(verification_request(token, graduate=graduate, facts=("education",)))
    env = {**os.environ, "GATEWAY_DATA_DIR": str(served_home / "data"), "GATEWAY_KEYS_DIR": str(served_home / "keys")}
    command = [
        sys.executable,
        "-m",
        "gateway",
        "send",
        str(request),
        "--as",
        HUKOU_OFFICE,
        "--to",
        EDUCATION_DEPARTMENT,
    ]
    sent = subprocess.run([*command, "--url", gateway_url], env=env, capture_output=True, text=True, timeout=60)
    assert sent.returncode == 0, sent.stderr
    assert "answered under grant" in sent.stdout and "孙悦" in sent.stdout
    assert "education       北京示范大学 (12110108400000008J), bachelor, 计算机科学与技术, 2025-06-30" in sent.stdout
    assert "destination" not in sent.stdout and "identity_match" not in sent.stdout
    with pytest.raises(GatewayRefusal) as caught:  # the one use is taken
        client(gateway_url, served_home, HUKOU_OFFICE).send(request.read_bytes(), recipient=EDUCATION_DEPARTMENT)
    assert caught.value.code == "AUTHORISATION_EXHAUSTED"
