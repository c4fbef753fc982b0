"""Graduate verification through POST /soap: the graduate's authorisation enforced, the answer signed."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree
from sqlalchemy import func, select

from gateway.audit.entries import decode
from gateway.audit.models import AuditEntry
from gateway.graduates.models import GraduateAccount
from gateway.grants import services
from gateway.grants.models import Grant, GrantUse
from gateway.grants.tokens import ISSUER, GrantTokens
from gateway.intake.catalog import ServiceCatalog
from gateway.messages.models import Message
from gateway.sdk.verification import read_answer
from gateway.settings import SCHEMAS_DIR, Settings
from gateway.store.db import transaction
from tests.conftest import AGENCY_CHAOYANG, HUKOU_OFFICE, UNIVERSITY, Signer, example, require
from tests.domain.helpers import send
from tests.graduates.helpers import LI_MING, WANG_HONG, activated, context
from tests.grants.helpers import ALL_FACTS, NS, ask, grant, verification_request


@pytest.fixture
def li_ming(app: Flask, client: FlaskClient, sign: Signer) -> GraduateAccount:
    return activated(app, client, sign, LI_MING)


def anchors(settings: Settings) -> tuple[Path, ...]:
    return (settings.keys_dir / "ca" / "ca.cert.pem",)


def uses(app: Flask, grant_id: str) -> list[tuple[str, str | None]]:
    with transaction(context(app).sessions) as session:
        rows = session.scalars(select(GrantUse).where(GrantUse.grant_id == grant_id).order_by(GrantUse.id))
        return [(u.outcome, u.fault_code) for u in rows]


def test_the_answer_holds_only_the_facts_asked_signed_with_the_receipt(
    app: Flask, client: FlaskClient, sign: Signer, settings: Settings, li_ming: GraduateAccount
) -> None:
    issued = grant(app, li_ming, facts=ALL_FACTS)
    asked = ask(client, sign, verification_request(issued.token, facts=("identity_match", "education")))
    assert asked.status == 200, asked.text
    assert ServiceCatalog(SCHEMAS_DIR).schema.validate(etree.ElementTree(asked.answer))
    receipt, answer = read_answer(asked.answer, anchors(settings), asked.message_id, HUKOU_OFFICE)
    assert receipt.status == "accepted"
    assert (answer.request_id, answer.grant_id, answer.subject_name) == ("VER-2026-000001", issued.grant.id, "李明")
    assert answer.identity_match is True
    assert answer.education is not None
    assert (answer.education.school.credit_code, answer.education.school.name) == (UNIVERSITY, "北京示范大学")
    assert (answer.education.level, answer.education.major) == ("bachelor", "计算机科学与技术")
    assert answer.education.graduation_date.isoformat() == "2025-06-30"
    assert answer.destination is None and answer.archive is None
    facts = asked.answer.find("ver:GraduateVerificationResponse/ver:Facts", NS)
    assert facts is not None and [etree.QName(f).localname for f in facts] == ["IdentityMatch", "Education"]
    assert LI_MING.identity_number.encode() not in etree.tostring(asked.body)
    assert uses(app, issued.grant.id) == [("used", None)]
    with transaction(context(app).sessions) as session:
        stored = session.scalar(select(Message).where(Message.message_id == asked.message_id))
        assert stored is not None and stored.deliveries == []  # answered by the gateway, delivered to nobody
        [entry] = session.scalars(select(AuditEntry).where(AuditEntry.kind == "grant.used"))
        recorded = decode(entry.entry)
        assert (recorded["grant"], recorded["verifier"], recorded["facts"], recorded["purpose"]) == (
            issued.grant.id,
            HUKOU_OFFICE,
            "identity_match,education",
            "settlement",
        )
        assert recorded["message_id"] == asked.message_id and recorded["fault"] is None


def test_destination_archive_and_an_identity_number_that_does_not_match(
    app: Flask, client: FlaskClient, sign: Signer, settings: Settings, li_ming: GraduateAccount
) -> None:
    code, detail = send(client, sign, "archive-transfer-request", AGENCY_CHAOYANG, UNIVERSITY)
    assert code is None, detail
    issued = grant(app, li_ming, facts=ALL_FACTS, max_uses=2)
    document = verification_request(
        issued.token, facts=ALL_FACTS, by="transfer", identity_number=WANG_HONG.identity_number
    )
    asked = ask(client, sign, document)
    _, answer = read_answer(asked.answer, anchors(settings), asked.message_id, HUKOU_OFFICE)
    assert answer.identity_match is False  # name and transfer number are Li Ming's, the identity number is not
    assert answer.destination is not None and answer.destination.code == "10"
    assert answer.destination.employer is not None and answer.destination.employer.name == "北京示范科技有限公司"
    assert answer.archive is not None
    assert (answer.archive.holder.credit_code, answer.archive.transfer_status) == (UNIVERSITY, "requested")
    matching = ask(client, sign, verification_request(issued.token, identity_number=LI_MING.identity_number))
    assert read_answer(matching.answer, anchors(settings), matching.message_id, HUKOU_OFFICE)[1].identity_match


def test_the_short_code_works_like_the_token(
    app: Flask, client: FlaskClient, sign: Signer, li_ming: GraduateAccount
) -> None:
    issued = grant(app, li_ming)
    asked = ask(client, sign, verification_request(issued.short_code.lower().replace("-", " ")))
    assert asked.status == 200, asked.text
    assert uses(app, issued.grant.id) == [("used", None)]


def test_revoked_then_refused_and_exhausted_after_the_last_use(
    app: Flask, client: FlaskClient, sign: Signer, li_ming: GraduateAccount
) -> None:
    two_uses = grant(app, li_ming, max_uses=2)
    assert [ask(client, sign, verification_request(two_uses.token)).fault for _ in range(3)] == [
        None,
        None,
        "AUTHORISATION_EXHAUSTED",
    ]
    revocable = grant(app, li_ming, max_uses=5)
    assert ask(client, sign, verification_request(revocable.token)).fault is None
    with transaction(context(app).sessions) as session:
        services.revoke(session, li_ming, revocable.grant.id, datetime.now(UTC))
    assert ask(client, sign, verification_request(revocable.token)).fault == "AUTHORISATION_REVOKED"
    assert uses(app, two_uses.grant.id) == [("used", None), ("used", None), ("refused", "AUTHORISATION_EXHAUSTED")]
    with transaction(context(app).sessions) as session:
        assert session.get(Grant, two_uses.grant.id).uses == 2  # type: ignore[union-attr]
        assert session.get(Grant, revocable.grant.id).uses == 1  # type: ignore[union-attr]


def test_a_paused_grant_refuses_until_resumed(
    app: Flask, client: FlaskClient, sign: Signer, li_ming: GraduateAccount
) -> None:
    issued = grant(app, li_ming, max_uses=3)
    with transaction(context(app).sessions) as session:
        services.pause(session, li_ming, issued.grant.id, datetime.now(UTC))
    paused = ask(client, sign, verification_request(issued.token))
    assert (paused.fault, "paused" in paused.text) == ("AUTHORISATION_REVOKED", True)
    with transaction(context(app).sessions) as session:
        services.resume(session, li_ming, issued.grant.id, datetime.now(UTC))
    assert ask(client, sign, verification_request(issued.token)).fault is None


def forged(issued: services.IssuedGrant, settings: Settings) -> dict[str, str]:
    claims = {"iss": ISSUER, "sub": issued.grant.id, "aud": HUKOU_OFFICE, "iat": 1, "exp": 4102444800, "jti": "x"}
    head, _body, signature = issued.token.split(".")
    widened = base64.urlsafe_b64encode(json.dumps({**claims, "aud": AGENCY_CHAOYANG}).encode()).decode().rstrip("=")
    real = GrantTokens.from_keys_dir(settings.keys_dir)
    return {
        "garbage": "not a token",
        "another key": jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), "ES256", {"typ": "grant+jwt"}),
        "tampered audience": f"{head}.{widened}.{signature}",
        "unknown grant": real.issue(
            "00000000-0000-4000-8000-000000000000", HUKOU_OFFICE, datetime.now(UTC), datetime.now(UTC)
        ),
        "unknown short code": "ZZZZ-ZZZZ",
    }


def test_missing_and_invalid_authorisations(
    app: Flask, client: FlaskClient, sign: Signer, settings: Settings, li_ming: GraduateAccount
) -> None:
    issued = grant(app, li_ming)
    assert ask(client, sign, verification_request(None)).fault == "AUTHORISATION_MISSING"
    for name, token in forged(issued, settings).items():
        assert ask(client, sign, verification_request(token)).fault == "AUTHORISATION_INVALID", name
    assert uses(app, issued.grant.id) == []  # none of them named the grant
    with transaction(context(app).sessions) as session:
        refused = list(session.scalars(select(GrantUse).where(GrantUse.grant_id.is_(None))))
        assert len(refused) == 6
        # The subject names Li Ming, who has an account: the attempts are his to see.
        assert {(u.account_id, u.outcome) for u in refused} == {(li_ming.id, "refused")}
        assert session.scalar(select(func.count()).select_from(Message)) == 2  # only the registration and its filing


def test_each_rule_of_the_grant_refuses_with_its_fault(
    app: Flask, client: FlaskClient, sign: Signer, li_ming: GraduateAccount
) -> None:
    activated(app, client, sign, WANG_HONG)
    past = datetime.now(UTC) - timedelta(days=2)
    cases = [
        (grant(app, li_ming, verifier_id=AGENCY_CHAOYANG), {}, "AUTHORISATION_WRONG_VERIFIER"),
        (grant(app, li_ming), {"graduate": WANG_HONG}, "AUTHORISATION_SUBJECT_MISMATCH"),
        (grant(app, li_ming, now=past, valid_days=1), {}, "AUTHORISATION_EXPIRED"),
        (grant(app, li_ming), {"facts": ("education", "archive")}, "AUTHORISATION_INSUFFICIENT_SCOPE"),
        (grant(app, li_ming), {"purpose": "employment_onboarding"}, "AUTHORISATION_INSUFFICIENT_SCOPE"),
    ]
    for issued, changes, code in cases:
        asked = ask(client, sign, verification_request(issued.token, **changes))  # type: ignore[arg-type]
        assert (asked.status, asked.fault) == (500, code), asked.text
        assert uses(app, issued.grant.id) == [("refused", code)]
    with transaction(context(app).sessions) as session:
        assert session.scalar(select(func.sum(Grant.uses))) == 0
        refused = [
            decode(e.entry) for e in session.scalars(select(AuditEntry).where(AuditEntry.kind == "grant.refused"))
        ]
        assert [r["fault"] for r in refused] == [code for _, _, code in cases]
        refusals = [
            decode(e.entry) for e in session.scalars(select(AuditEntry).where(AuditEntry.kind == "message.refused"))
        ]
        assert [r["code"] for r in refusals] == [code for _, _, code in cases]
        entries = b"".join(e.entry for e in session.scalars(select(AuditEntry)))
        assert LI_MING.identity_number.encode() not in entries and WANG_HONG.identity_number.encode() not in entries


def test_a_wrong_verifier_learns_nothing_of_the_grants_state(
    app: Flask, client: FlaskClient, sign: Signer, li_ming: GraduateAccount
) -> None:
    issued = grant(app, li_ming)
    with transaction(context(app).sessions) as session:
        services.revoke(session, li_ming, issued.grant.id, datetime.now(UTC))
    stolen = ask(client, sign, verification_request(issued.token), sender=AGENCY_CHAOYANG)
    assert stolen.fault == "AUTHORISATION_WRONG_VERIFIER"
    assert "revoked" not in stolen.text and HUKOU_OFFICE not in stolen.text


def test_the_example_request_is_refused_for_its_placeholder_token(client: FlaskClient, sign: Signer) -> None:
    asked = ask(client, sign, example("graduate-verification-request"))
    assert asked.fault == "AUTHORISATION_INVALID"


def test_the_signed_response_verifies_with_xmlsec1(
    app: Flask, client: FlaskClient, sign: Signer, settings: Settings, li_ming: GraduateAccount, tmp_path: Path
) -> None:
    require("xmlsec1", lambda: subprocess.run(["xmlsec1", "--version"], capture_output=True, check=True, timeout=30))
    asked = ask(client, sign, verification_request(grant(app, li_ming).token))
    response = asked.answer.find("ver:GraduateVerificationResponse", NS)
    assert response is not None
    alone = tmp_path / "response.xml"
    alone.write_bytes(etree.tostring(response))

    def check() -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [
                shutil.which("xmlsec1") or "xmlsec1",
                "--verify",
                "--trusted-pem",
                str(anchors(settings)[0]),
                "--enabled-key-data",
                "x509",
                "--id-attr:Id",
                "urn:gradex:verification:1:GraduateVerificationResponse",
                str(alone),
            ],
            capture_output=True,
            timeout=30,
            check=False,
        )

    verified = check()
    assert verified.returncode == 0, verified.stderr.decode()
    signed = alone.read_bytes()
    alone.write_bytes(signed.replace(b"bachelor", b"master"))
    assert alone.read_bytes() != signed and check().returncode != 0


def test_employment_evidence_for_settlement_from_the_filed_registration(
    app: Flask, client: FlaskClient, sign: Signer, settings: Settings, li_ming: GraduateAccount
) -> None:
    """A hukou office granted the employment evidence sees the employer and the agreement's reference and date."""
    issued = grant(app, li_ming, facts=("identity_match", "employment_evidence"))
    asked = ask(client, sign, verification_request(issued.token, facts=("employment_evidence",)))
    assert asked.status == 200, asked.text
    assert ServiceCatalog(SCHEMAS_DIR).schema.validate(etree.ElementTree(asked.answer))
    _, answer = read_answer(asked.answer, anchors(settings), asked.message_id, HUKOU_OFFICE)
    evidence = answer.employment_evidence
    assert evidence is not None and evidence.employer is not None
    assert (evidence.employer.credit_code, evidence.employer.name) == ("91110108500000006J", "北京示范科技有限公司")
    assert (evidence.contract_kind, evidence.contract_reference) == ("employment_agreement", "AGR-2025-000123")
    assert evidence.contract_date is not None and evidence.contract_date.isoformat() == "2025-05-20"
    # Minimised like every fact: nothing else is in the answer.
    assert answer.education is None and answer.destination is None and answer.identity_match is None
    # Not granted, not answered.
    other = grant(app, li_ming, facts=("identity_match",))
    refused = ask(client, sign, verification_request(other.token, facts=("employment_evidence",)))
    assert refused.fault == "AUTHORISATION_INSUFFICIENT_SCOPE", refused.text
