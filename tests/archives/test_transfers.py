"""Archive transfers end to end through POST /soap: request, manifest, receipt, and the refusals.

Each test first has the university register the graduate's destination with the education
department and the department file it; the registration is varied by editing the example's text.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree
from sqlalchemy import select

from gateway.archives.models import ArchiveTransfer
from gateway.registry.models import ParticipantKind
from gateway.registry.services import ParticipantInput, add_participant
from gateway.sdk.envelope import wrap
from gateway.settings import Settings
from gateway.store.db import transaction
from gateway.web.app import create_app
from tests.conftest import (
    AGENCY_BEIJING,
    AGENCY_CHAOYANG,
    EDUCATION_DEPARTMENT,
    PRIVATE_EMPLOYER,
    SOE_EMPLOYER,
    UNIVERSITY,
    Signer,
    example,
)

NS = {"gw": "urn:gradex:gateway:1"}
IDENTITY_NUMBER = "11010520030315041X"
ADMITTING = "12310000425000001L"  # a Shanghai university, added by the further-study test

Send = Callable[..., etree._Element]


def sender(client: FlaskClient, sign: Signer) -> Send:
    """``send(document, service, sender, recipient)``: wrapped, signed, posted; the response's root."""

    def post(document: str | bytes, service: str, sender: str, recipient: str) -> etree._Element:
        data = document.encode() if isinstance(document, str) else document
        envelope = wrap(data, sender=sender, recipient=recipient, service=service, message_id=str(uuid.uuid4()))
        response = client.post("/soap", data=sign(envelope, as_=sender), content_type="text/xml; charset=utf-8")
        return etree.fromstring(response.data)

    return post


@pytest.fixture
def send(client: FlaskClient, sign: Signer) -> Send:
    return sender(client, sign)


def accepted(body: etree._Element) -> None:
    assert body.findtext(".//gw:Receipt/gw:Status", namespaces=NS) == "accepted", etree.tostring(body).decode()


def refused(body: etree._Element, code: str, *words: str) -> str:
    assert body.findtext(".//gw:FaultDetail/gw:Code", namespaces=NS) == code, etree.tostring(body).decode()
    message = body.findtext(".//gw:FaultDetail/gw:Message", namespaces=NS) or ""
    for word in words:
        assert word in message, message
    assert IDENTITY_NUMBER not in etree.tostring(body).decode()
    return message


def text(name: str) -> str:
    return example(name).decode()


def register(send: Send, registration: str | None = None, filed: bool = True) -> None:
    accepted(
        send(
            registration or text("destination-registration"),
            "DestinationRegistration",
            UNIVERSITY,
            EDUCATION_DEPARTMENT,
        )
    )
    if filed:
        accepted(send(text("registration-filed"), "RegistrationFiled", EDUCATION_DEPARTMENT, UNIVERSITY))


def without_employer(registration: str) -> str:
    registration = re.sub(r"\s*<reg:Employer>.*?</reg:Employer>", "", registration, flags=re.S)
    return re.sub(r"\s*<reg:ContractReference>.*?</reg:ContractReference>", "", registration)


def manifest_to(receiver: str, name: str = "示范接收单位", method: str | None = None) -> str:
    manifest = text("archive-transfer-manifest").replace(AGENCY_CHAOYANG, receiver)
    manifest = manifest.replace("北京市朝阳区人才服务中心", name)
    if method is not None:
        manifest = manifest.replace(
            "<arc:Method>confidential_communication</arc:Method>", f"<arc:Method>{method}</arc:Method>"
        )
    return manifest


def transfers(app: Flask) -> list[ArchiveTransfer]:
    with transaction(app.extensions["gateway"].sessions) as session:
        found = list(session.scalars(select(ArchiveTransfer).order_by(ArchiveTransfer.id)))
        session.expunge_all()
    return found


def test_request_manifest_receipt(app: Flask, send: Send) -> None:
    register(send)
    accepted(send(text("archive-transfer-request"), "ArchiveTransferRequest", AGENCY_CHAOYANG, UNIVERSITY))
    [requested] = transfers(app)
    assert requested.status == "requested"
    assert (requested.holder_id, requested.receiver_id) == (UNIVERSITY, AGENCY_CHAOYANG)
    assert requested.request_id == "ATR-2025-000045" and requested.transfer_number == "ZD11000020250001234"
    assert requested.identity_hash != IDENTITY_NUMBER and len(requested.identity_hash) == 64
    assert requested.requested_at is not None and requested.dispatch_due_at is not None
    assert requested.dispatch_due_at - requested.requested_at == timedelta(days=15)
    # A reminder (the same request again) keeps the clock it started.
    accepted(send(text("archive-transfer-request"), "ArchiveTransferRequest", AGENCY_CHAOYANG, UNIVERSITY))
    assert [(t.id, t.dispatch_due_at) for t in transfers(app)] == [(requested.id, requested.dispatch_due_at)]

    accepted(send(text("archive-transfer-manifest"), "ArchiveTransferManifest", UNIVERSITY, AGENCY_CHAOYANG))
    [dispatched] = transfers(app)
    assert dispatched.id == requested.id
    assert dispatched.status == "dispatched" and dispatched.manifest_id == "ATM-2025-000045"
    assert dispatched.documents == 7 and dispatched.dispatch_method == "confidential_communication"
    assert dispatched.waybill_number == "JY-1101-2025-0007788"
    assert dispatched.dispatched_at is not None and dispatched.receipt_due_at is not None
    assert dispatched.receipt_due_at - dispatched.dispatched_at == timedelta(days=30)

    accepted(send(text("archive-receipt"), "ArchiveReceipt", AGENCY_CHAOYANG, UNIVERSITY))
    [received] = transfers(app)
    assert received.status == "received" and received.received_at is not None
    assert (received.documents_missing, received.documents_damaged) == (0, 1)

    # Receipted once; the archive is now held by the agency, not the university.
    refused(
        send(text("archive-receipt"), "ArchiveReceipt", AGENCY_CHAOYANG, UNIVERSITY),
        "ARCHIVE_TRANSFER_DUPLICATE",
        "already receipted",
    )
    again = text("archive-transfer-manifest").replace("ATM-2025-000045", "ATM-2025-000046")
    refused(
        send(again, "ArchiveTransferManifest", UNIVERSITY, AGENCY_CHAOYANG),
        "ARCHIVE_RULE_VIOLATION",
        "rule holder",
        AGENCY_CHAOYANG,
    )


def test_a_manifest_without_a_request_opens_its_own_transfer(app: Flask, send: Send) -> None:
    register(send)
    accepted(send(text("archive-transfer-manifest"), "ArchiveTransferManifest", UNIVERSITY, AGENCY_CHAOYANG))
    [transfer] = transfers(app)
    assert transfer.status == "dispatched" and transfer.requested_at is None and transfer.dispatch_due_at is None
    refused(
        send(text("archive-transfer-manifest"), "ArchiveTransferManifest", UNIVERSITY, AGENCY_CHAOYANG),
        "ARCHIVE_TRANSFER_DUPLICATE",
        "ATM-2025-000045 was already declared",
    )


def test_late_leavers_get_longer_limits(app: Flask, send: Send) -> None:
    registration = text("destination-registration").replace("<c:LeavesLate>false", "<c:LeavesLate>true")
    register(send, registration)
    accepted(send(text("archive-transfer-request"), "ArchiveTransferRequest", AGENCY_CHAOYANG, UNIVERSITY))
    [requested] = transfers(app)
    assert requested.leaves_late
    assert requested.dispatch_due_at is not None and requested.requested_at is not None
    assert requested.dispatch_due_at - requested.requested_at == timedelta(days=15 + 30)
    accepted(send(text("archive-transfer-manifest"), "ArchiveTransferManifest", UNIVERSITY, AGENCY_CHAOYANG))
    [dispatched] = transfers(app)
    assert dispatched.receipt_due_at is not None and dispatched.dispatched_at is not None
    assert dispatched.receipt_due_at - dispatched.dispatched_at == timedelta(days=30 + 30)


def test_manifest_to_a_unit_the_rules_do_not_allow(send: Send) -> None:
    register(send)
    refused(
        send(manifest_to(AGENCY_BEIJING), "ArchiveTransferManifest", UNIVERSITY, AGENCY_BEIJING),
        "ARCHIVE_RULE_VIOLATION",
        "rule non-public-employer",
        f"only {AGENCY_CHAOYANG} may receive it",
    )
    refused(
        send(manifest_to(PRIVATE_EMPLOYER), "ArchiveTransferManifest", UNIVERSITY, PRIVATE_EMPLOYER),
        "ARCHIVE_RULE_VIOLATION",
        "rule non-public-employer",
    )


def test_manifest_naming_another_receiving_unit_than_its_recipient(send: Send) -> None:
    register(send)
    refused(
        send(text("archive-transfer-manifest"), "ArchiveTransferManifest", UNIVERSITY, AGENCY_BEIJING),
        "ARCHIVE_RULE_VIOLATION",
        "rule receiving-unit",
    )


@pytest.mark.parametrize("method", ["ordinary_post", "carried_by_graduate"])
def test_confidential_documents_by_ordinary_means_are_refused(send: Send, method: str) -> None:
    register(send)
    refused(
        send(manifest_to(AGENCY_CHAOYANG, method=method), "ArchiveTransferManifest", UNIVERSITY, AGENCY_CHAOYANG),
        "ARCHIVE_RULE_VIOLATION",
        "rule dispatch-method",
        method,
    )


@pytest.mark.parametrize("method", ["ordinary_post", "carried_by_graduate"])
def test_a_personnel_archive_never_goes_by_post_or_by_hand_whatever_its_contents(send: Send, method: str) -> None:
    register(send)
    manifest = manifest_to(AGENCY_CHAOYANG, "北京市朝阳区人才服务中心", method=method)
    refused(
        send(
            manifest.replace("<arc:Confidential>true", "<arc:Confidential>false"),
            "ArchiveTransferManifest",
            UNIVERSITY,
            AGENCY_CHAOYANG,
        ),
        "ARCHIVE_RULE_VIOLATION",
        "rule dispatch-method",
        method,
    )


@pytest.mark.parametrize("registered", [True, False], ids=["registered-not-filed", "never-registered"])
def test_manifest_for_a_graduate_without_a_filed_registration(send: Send, registered: bool) -> None:
    if registered:
        register(send, filed=False)
    refused(
        send(text("archive-transfer-manifest"), "ArchiveTransferManifest", UNIVERSITY, AGENCY_CHAOYANG),
        "REGISTRATION_NOT_FILED",
    )
    refused(
        send(text("archive-transfer-request"), "ArchiveTransferRequest", AGENCY_CHAOYANG, UNIVERSITY),
        "REGISTRATION_NOT_FILED",
    )


def test_manifest_with_another_transfer_number(send: Send) -> None:
    register(send)
    manifest = text("archive-transfer-manifest").replace("ZD11000020250001234", "ZD11000020250009999")
    refused(
        send(manifest, "ArchiveTransferManifest", UNIVERSITY, AGENCY_CHAOYANG),
        "REGISTRATION_NOT_FILED",
        "ZD11000020250009999",
    )


def test_request_from_a_unit_that_may_not_receive_the_archive(send: Send) -> None:
    register(send)
    request = text("archive-transfer-request").replace(AGENCY_CHAOYANG, AGENCY_BEIJING)
    refused(
        send(request, "ArchiveTransferRequest", AGENCY_BEIJING, UNIVERSITY),
        "ARCHIVE_RULE_VIOLATION",
        "rule non-public-employer",
        AGENCY_CHAOYANG,
    )


def test_receipt_for_a_manifest_never_dispatched(send: Send) -> None:
    register(send)
    refused(
        send(text("archive-receipt"), "ArchiveReceipt", AGENCY_CHAOYANG, UNIVERSITY),
        "ARCHIVE_TRANSFER_UNKNOWN",
        "ATM-2025-000045",
    )


def test_state_owned_employer_receives_the_archive_itself(app: Flask, send: Send) -> None:
    registration = (
        text("destination-registration")
        .replace(PRIVATE_EMPLOYER, SOE_EMPLOYER)
        .replace("北京示范科技有限公司", "中国示范能源集团有限公司")
        .replace("<c:UnitNature>39", "<c:UnitNature>31")
        .replace("<c:Region>110108", "<c:Region>110102")
        .replace("agency_at_household", "employer")
        .replace(AGENCY_CHAOYANG, SOE_EMPLOYER)
    )
    register(send, registration)
    refused(
        send(text("archive-transfer-manifest"), "ArchiveTransferManifest", UNIVERSITY, AGENCY_CHAOYANG),
        "ARCHIVE_RULE_VIOLATION",
        "rule employer-keeps-archive",
        f"only {SOE_EMPLOYER} may receive it",
    )
    accepted(send(manifest_to(SOE_EMPLOYER), "ArchiveTransferManifest", UNIVERSITY, SOE_EMPLOYER))
    assert [t.receiver_id for t in transfers(app)] == [SOE_EMPLOYER]


def test_awaiting_employment_goes_to_the_household_agency(send: Send) -> None:
    registration = without_employer(
        text("destination-registration").replace("<reg:DestinationCode>10", "<reg:DestinationCode>70")
    )
    register(send, registration.replace(f"<reg:ArchiveReceiver>{AGENCY_CHAOYANG}</reg:ArchiveReceiver>", ""))
    refused(
        send(manifest_to(AGENCY_BEIJING), "ArchiveTransferManifest", UNIVERSITY, AGENCY_BEIJING),
        "ARCHIVE_RULE_VIOLATION",
        "rule not-employed",
        f"only {AGENCY_CHAOYANG} may receive it",
    )
    accepted(send(text("archive-transfer-manifest"), "ArchiveTransferManifest", UNIVERSITY, AGENCY_CHAOYANG))


def test_further_study_goes_to_the_admitting_institution(app: Flask, send: Send) -> None:
    with transaction(app.extensions["gateway"].sessions) as session:
        add_participant(
            session,
            ParticipantInput(id=ADMITTING, name="上海示范大学", kind=ParticipantKind.UNIVERSITY, region="310000"),
            datetime.now(UTC),
        )
    registration = without_employer(
        text("destination-registration").replace("<reg:DestinationCode>10", "<reg:DestinationCode>801")
    )
    registration = registration.replace("agency_at_household", "admitting_institution").replace(
        f"<reg:ArchiveReceiver>{AGENCY_CHAOYANG}</reg:ArchiveReceiver>",
        f"<reg:AdmittingInstitution><c:CreditCode>{ADMITTING}</c:CreditCode><c:Name>上海示范大学</c:Name>"
        "</reg:AdmittingInstitution>",
    )
    register(send, registration)
    refused(
        send(text("archive-transfer-manifest"), "ArchiveTransferManifest", UNIVERSITY, AGENCY_CHAOYANG),
        "ARCHIVE_RULE_VIOLATION",
        "rule further-study",
        f"only {ADMITTING} may receive it",
    )
    accepted(send(manifest_to(ADMITTING), "ArchiveTransferManifest", UNIVERSITY, ADMITTING))


def test_the_transfer_on_both_backends(store_settings: Settings, sign: Signer) -> None:
    app = create_app(store_settings)
    try:
        send = sender(app.test_client(), sign)
        register(send)
        accepted(send(text("archive-transfer-request"), "ArchiveTransferRequest", AGENCY_CHAOYANG, UNIVERSITY))
        accepted(send(text("archive-transfer-manifest"), "ArchiveTransferManifest", UNIVERSITY, AGENCY_CHAOYANG))
        accepted(send(text("archive-receipt"), "ArchiveReceipt", AGENCY_CHAOYANG, UNIVERSITY))
        [transfer] = transfers(app)
        assert transfer.status == "received" and transfer.request_id == "ATR-2025-000045"
        again = text("archive-transfer-manifest").replace("ATM-2025-000045", "ATM-2025-000046")
        refused(send(again, "ArchiveTransferManifest", UNIVERSITY, AGENCY_CHAOYANG), "ARCHIVE_RULE_VIOLATION")
    finally:
        app.extensions["gateway"].engine.dispose()
