"""Agreement offers in the portal: listed for their graduate only, answered once, sent on by the gateway."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from signxml.verifier import SignatureConfiguration, XMLVerifier
from sqlalchemy import select, update

from gateway.agreements.models import Agreement
from gateway.audit.entries import decode
from gateway.audit.models import AuditEntry
from gateway.errors import OfferResponseRefused
from gateway.graduates import services
from gateway.graduates.models import GraduateAccount
from gateway.messages.models import Message
from gateway.registry.models import Participant
from gateway.sdk.receipts import sent_digests
from gateway.sdk.recipient import verify_delivery
from gateway.security.policy import ALLOWED_DIGESTS, ALLOWED_SIGNATURE_METHODS, EXCLUSIVE_C14N
from gateway.security.verify import SIGNATURE_LOCATION
from gateway.settings import Settings
from gateway.store.db import transaction
from tests.conftest import PRIVATE_EMPLOYER, UNIVERSITY, Signer, example
from tests.domain.helpers import send
from tests.domain.test_season import current_offer
from tests.graduates.helpers import LI_MING, WANG_HONG, activated, context
from tests.mailbox.helpers import NS, acknowledge_request, ask, fetch_request

AGR = {"agr": "urn:gradex:agreement:1"}


@pytest.fixture
def li_ming(app: Flask, client: FlaskClient, sign: Signer) -> GraduateAccount:
    account = activated(app, client, sign, LI_MING)
    code, detail = send(client, sign, current_offer(example("agreement-offer")), PRIVATE_EMPLOYER, UNIVERSITY)
    assert code is None, detail
    return account


def open_offers(app: Flask, account: GraduateAccount, now: datetime | None = None) -> list[services.Offer]:
    with transaction(context(app).sessions) as session:
        return services.offers(session, account, now or datetime.now(UTC))


def respond(
    app: Flask, account: GraduateAccount, pk: int, accept: bool = True, now: datetime | None = None, **kw: object
) -> services.OfferAnswer:
    gateway = context(app)
    with transaction(gateway.sessions) as session:
        return services.respond_to_offer(
            session,
            gateway.originator,
            account,
            pk,
            accept,
            now or datetime.now(UTC),
            **kw,  # type: ignore[arg-type]
        )


def test_the_offer_is_listed_for_its_graduate_only(
    app: Flask, client: FlaskClient, sign: Signer, li_ming: GraduateAccount
) -> None:
    wang = activated(app, client, sign, WANG_HONG)
    [offer] = open_offers(app, li_ming)
    assert (offer.agreement_id, offer.employer_id, offer.employer_name) == (
        "AGR-2025-000123",
        PRIVATE_EMPLOYER,
        "北京示范科技有限公司",
    )
    assert (offer.university_name, offer.position, offer.answerable) == ("北京示范大学", "软件开发工程师", True)
    assert not open_offers(app, li_ming, datetime.now(UTC) + timedelta(days=60))[0].answerable
    assert open_offers(app, wang) == []
    with pytest.raises(OfferResponseRefused) as caught:
        respond(app, wang, offer.agreement_pk)
    assert caught.value.code == "not_found"


def test_accepting_advances_the_agreement_and_the_gateway_sends_it_on(
    app: Flask, client: FlaskClient, sign: Signer, settings: Settings, li_ming: GraduateAccount
) -> None:
    [offer] = open_offers(app, li_ming)
    answer = respond(app, li_ming, offer.agreement_pk)
    assert answer.state == "accepted" and len(answer.message_ids) == 2
    platform = settings.platform_id
    with transaction(context(app).sessions) as session:
        assert session.get(Agreement, offer.agreement_pk).state == "accepted"  # type: ignore[union-attr]
        sent = list(session.scalars(select(Message).where(Message.sender_id == platform).order_by(Message.id)))
        assert [(m.recipient_id, m.service, m.correlation_id) for m in sent] == [
            (UNIVERSITY, "AgreementResponse", "AGR-2025-000123"),
            (PRIVATE_EMPLOYER, "AgreementResponse", "AGR-2025-000123"),
        ]
        assert [[d.status for d in m.deliveries] for m in sent] == [["queued"], ["queued"]]  # pull mailboxes
        envelopes = [context(app).payloads.open_envelope(m) for m in sent]
        assert all(b"AgreementResponse" in e for e in envelopes)
        assert LI_MING.identity_number.encode() not in b"".join(envelopes)
        originated = [
            decode(e.entry) for e in session.scalars(select(AuditEntry).where(AuditEntry.kind == "message.originated"))
        ]
        assert [o["recipient"] for o in originated] == [UNIVERSITY, PRIVATE_EMPLOYER]
        assert originated[0]["on_behalf_of"] == f"graduate account {li_ming.id}"
    assert open_offers(app, li_ming) == []
    # The university fetches it from its mailbox: a gw:Delivery signed by the gateway, holding the
    # platform's envelope, itself signed with the gateway's certificate (registered to the platform).
    anchors = (settings.keys_dir / "ca" / "ca.cert.pem",)
    fetched = ask(client, sign, fetch_request(), UNIVERSITY)  # also the filing and the offer itself
    [delivery] = [
        d
        for d in (verify_delivery(e, anchors) for e in fetched.body.iterfind("gw:Delivery", NS))
        if d.sender == platform
    ]
    assert (delivery.sender, delivery.recipient, delivery.service) == (platform, UNIVERSITY, "AgreementResponse")
    assert context(app).catalog.schema.validate(delivery.original.getroottree())
    document = delivery.original.find(".//agr:AgreementResponse", AGR)
    assert document is not None
    assert [document.findtext(f"agr:{tag}", namespaces=AGR) for tag in ("AgreementId", "Employer", "Decision")] == [
        "AGR-2025-000123",
        PRIVATE_EMPLOYER,
        "accept",
    ]
    assert set(sent_digests(delivery.original)) == {"Body", "Timestamp", "Routing"}
    with transaction(context(app).sessions) as session:
        pem = session.get(Participant, platform).certificates[0].pem  # type: ignore[union-attr]
    config = SignatureConfiguration(
        location=SIGNATURE_LOCATION,
        expect_references=3,
        signature_methods=ALLOWED_SIGNATURE_METHODS,
        digest_algorithms=ALLOWED_DIGESTS,
        default_reference_c14n_method=EXCLUSIVE_C14N,
    )
    XMLVerifier().verify(delivery.original, x509_cert=pem, id_attribute="Id", expect_config=config)
    acknowledged = ask(client, sign, acknowledge_request((delivery.message_id, platform)), UNIVERSITY)
    assert acknowledged.body.findtext("gw:Result/gw:Status", namespaces=NS) == "acknowledged"
    # The university reviews the accepted agreement as before: the state machine goes on.
    code, detail = send(client, sign, "agreement-review", UNIVERSITY, PRIVATE_EMPLOYER)
    assert code is None, detail
    with transaction(context(app).sessions) as session:
        assert session.get(Agreement, offer.agreement_pk).state == "signed"  # type: ignore[union-attr]


def test_an_offer_is_answered_once_and_only_within_its_period(
    app: Flask, client: FlaskClient, sign: Signer, li_ming: GraduateAccount
) -> None:
    [offer] = open_offers(app, li_ming)
    for when, code in (
        (datetime.now(UTC) + timedelta(days=60), "expired"),
        (datetime(2020, 1, 1, tzinfo=UTC), "not_yet_valid"),
    ):
        with pytest.raises(OfferResponseRefused) as caught:
            respond(app, li_ming, offer.agreement_pk, now=when)
        assert caught.value.code == code
    assert respond(app, li_ming, offer.agreement_pk, accept=False).state == "refused"
    for accept in (True, False):
        with pytest.raises(OfferResponseRefused) as caught:
            respond(app, li_ming, offer.agreement_pk, accept=accept)
        assert caught.value.code == "already_answered"
    # The relayed answer of the university comes too late as well.
    code, _ = send(client, sign, "agreement-response", UNIVERSITY, PRIVATE_EMPLOYER)
    assert code == "AGREEMENT_OUT_OF_ORDER"


def test_push_deliveries_are_enqueued_after_the_commit_only(
    app: Flask, client: FlaskClient, sign: Signer, li_ming: GraduateAccount
) -> None:
    [offer] = open_offers(app, li_ming)
    gateway = context(app)
    with transaction(gateway.sessions) as session:
        session.execute(
            update(Participant)
            .where(Participant.id == PRIVATE_EMPLOYER)
            .values(delivery_mode="push", endpoint_url="http://127.0.0.1:9/deliver")
        )
    enqueued: list[tuple[list[int], Mapping[int, str]]] = []

    def enqueue(ids: list[int], recipients: Mapping[int, str]) -> None:
        enqueued.append((ids, recipients))

    with pytest.raises(RuntimeError), transaction(gateway.sessions) as session:
        services.respond_to_offer(
            session, gateway.originator, li_ming, offer.agreement_pk, True, datetime.now(UTC), enqueue
        )
        raise RuntimeError("the portal fails before the commit")
    assert enqueued == []
    answer = respond(app, li_ming, offer.agreement_pk, enqueue=enqueue)
    with transaction(gateway.sessions) as session:
        employer_message = session.scalar(select(Message).where(Message.message_id == answer.message_ids[1]))
        assert employer_message is not None
        ids = [d.id for d in employer_message.deliveries]
        assert enqueued == [(ids, dict.fromkeys(ids, PRIVATE_EMPLOYER))]  # each broker message names its recipient
        assert [d.mode for d in employer_message.deliveries] == ["push"]


def test_an_answer_from_a_university_must_name_the_graduate(
    app: Flask, client: FlaskClient, sign: Signer, li_ming: GraduateAccount
) -> None:
    without_number = example("agreement-response").replace(
        b"  <agr:IdentityNumber>11010520030315041X</agr:IdentityNumber>\n", b""
    )
    assert without_number != example("agreement-response")
    code, detail = send(client, sign, without_number, UNIVERSITY, PRIVATE_EMPLOYER, "AgreementResponse")
    assert code == "AGREEMENT_UNKNOWN" and "IdentityNumber" in detail
