"""Every example document, in the order of the examples' story, accepted with its usual sender.

This is the end-to-end walk of the whole domain: two agreements (one signed, one signed then
cancelled), a rejected and a filed registration, an archive requested, dispatched and received,
and a verification request. Each step must be accepted and stored with its signed receipt, and
the domain's records must end where the story ends.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from gateway.agreements.models import Agreement
from gateway.archives.models import ArchiveTransfer
from gateway.graduates import accounts
from gateway.graduates.models import MessageSubject
from gateway.grants import services as grants
from gateway.intake.catalog import ServiceCatalog
from gateway.messages.models import Message
from gateway.registrations.models import Registration
from gateway.settings import SCHEMAS_DIR
from gateway.store.db import transaction
from tests.conftest import (
    AGENCY_CHAOYANG,
    EDUCATION_DEPARTMENT,
    HUKOU_OFFICE,
    PRIVATE_EMPLOYER,
    SOE_EMPLOYER,
    UNIVERSITY,
    Signer,
    example,
)
from tests.domain.helpers import replace_text, send


def current_offer(document: bytes) -> bytes:
    """The example offer, valid from yesterday for a month (the example's own dates are in 2025)."""
    today = datetime.now(UTC).date()
    document = replace_text(document, "agr:ValidFrom", (today - timedelta(days=1)).isoformat())
    return replace_text(document, "agr:ValidUntil", (today + timedelta(days=30)).isoformat())


def soe_offer() -> bytes:
    """The earlier agreement AGR-2025-000088, offered by the state-owned employer."""
    document = replace_text(current_offer(example("agreement-offer")), "agr:AgreementId", "AGR-2025-000088")
    document = replace_text(document, "c:CreditCode", SOE_EMPLOYER)
    document = replace_text(document, "c:Name", "中国示范能源集团有限公司")
    document = replace_text(document, "c:UnitNature", "31")
    return replace_text(document, "c:Region", "110102")


def for_agreement(name: str, agreement_id: str) -> bytes:
    return replace_text(example(name), "agr:AgreementId", agreement_id)


STORY: list[tuple[str, bytes, str, str]] = [
    ("AgreementOffer", soe_offer(), SOE_EMPLOYER, UNIVERSITY),
    ("AgreementResponse", for_agreement("agreement-response", "AGR-2025-000088"), UNIVERSITY, SOE_EMPLOYER),
    ("AgreementReview", for_agreement("agreement-review", "AGR-2025-000088"), UNIVERSITY, SOE_EMPLOYER),
    ("AgreementCancellation", example("agreement-cancellation"), UNIVERSITY, SOE_EMPLOYER),
    ("AgreementCancellationReview", example("agreement-cancellation-review"), UNIVERSITY, SOE_EMPLOYER),
    ("AgreementOffer", current_offer(example("agreement-offer")), PRIVATE_EMPLOYER, UNIVERSITY),
    ("AgreementResponse", example("agreement-response"), UNIVERSITY, PRIVATE_EMPLOYER),
    ("AgreementReview", example("agreement-review"), UNIVERSITY, PRIVATE_EMPLOYER),
    (
        "DestinationRegistration",
        replace_text(example("destination-registration"), "reg:RegistrationId", "REG-2025-000120"),
        UNIVERSITY,
        EDUCATION_DEPARTMENT,
    ),
    ("RegistrationRejected", example("registration-rejected"), EDUCATION_DEPARTMENT, UNIVERSITY),
    ("DestinationRegistration", example("destination-registration"), UNIVERSITY, EDUCATION_DEPARTMENT),
    ("RegistrationFiled", example("registration-filed"), EDUCATION_DEPARTMENT, UNIVERSITY),
    ("ArchiveTransferRequest", example("archive-transfer-request"), AGENCY_CHAOYANG, UNIVERSITY),
    ("ArchiveTransferManifest", example("archive-transfer-manifest"), UNIVERSITY, AGENCY_CHAOYANG),
    ("ArchiveReceipt", example("archive-receipt"), AGENCY_CHAOYANG, UNIVERSITY),
    ("GraduateVerificationRequest", example("graduate-verification-request"), HUKOU_OFFICE, EDUCATION_DEPARTMENT),
    ("DirectoryEntryUpdate", example("directory-entry-update"), AGENCY_CHAOYANG, AGENCY_CHAOYANG),
]


def test_the_story_covers_every_business_service_of_the_wsdl() -> None:
    business = {s.name for s in ServiceCatalog(SCHEMAS_DIR).services if not s.is_plumbing}
    assert {step[0] for step in STORY} == business


def with_a_grant(app: Flask, document: bytes) -> bytes:
    """The example request with the token of a grant the example's graduate gives the hukou office now."""
    gateway = app.extensions["gateway"]
    now = datetime.now(UTC)
    with transaction(gateway.sessions) as session:
        account = accounts.activate(
            session, gateway.hasher, "11010520030315041X", "李明", "HY2025BJ7Q4K9M3T", "correct horse battery", now
        )
        facts = ["identity_match", "education", "destination"]
        issued = grants.create_grant(
            session, gateway.grant_tokens, account, HUKOU_OFFICE, facts, "settlement", None, now
        )
    return replace_text(document, "ver:AuthorisationToken", issued.token)


def test_every_example_is_accepted_in_the_order_of_the_story(client: FlaskClient, app: Flask, sign: Signer) -> None:
    for service, document, sender, recipient in STORY:
        if service == "GraduateVerificationRequest":
            document = with_a_grant(app, document)
        code, detail = send(client, sign, document, sender, recipient, service)
        assert code is None, f"{service} from {sender}: {code} {detail}"
        assert detail == recipient
    with transaction(app.extensions["gateway"].sessions) as session:
        stored = list(session.scalars(select(Message).order_by(Message.id)))
        assert [m.service for m in stored] == [step[0] for step in STORY]
        assert all(m.receipt and b"ds:SignatureValue" in m.receipt for m in stored)
        states = {(a.employer_id, a.agreement_id): a.state for a in session.scalars(select(Agreement))}
        assert states == {
            (SOE_EMPLOYER, "AGR-2025-000088"): "cancelled",
            (PRIVATE_EMPLOYER, "AGR-2025-000123"): "signed",
        }
        registrations = {r.registration_id: r.status for r in session.scalars(select(Registration))}
        assert registrations == {"REG-2025-000120": "rejected", "REG-2025-000123": "filed"}
        # Every message is indexed under the graduate it is about (for their history), the
        # verification request aside: it is recorded as a use of the graduate's grant.
        subjects = {pk: h for pk, h in session.execute(select(MessageSubject.message_pk, MessageSubject.identity_hash))}
        graduate = app.extensions["gateway"].hasher("11010520030315041X")
        about_nobody = ("GraduateVerificationRequest", "DirectoryEntryUpdate")
        assert {m.service: subjects.get(m.id) for m in stored} == {
            service: None if service in about_nobody else graduate for service, *_ in STORY
        }
        [transfer] = session.scalars(select(ArchiveTransfer))
        assert (transfer.status, transfer.receiver_id, transfer.holder_id) == ("received", AGENCY_CHAOYANG, UNIVERSITY)
