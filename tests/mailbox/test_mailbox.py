"""The pull mailbox through /soap: FetchMessages and AcknowledgeMessages, signed like every message."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree
from signxml.verifier import SignatureConfiguration, XMLVerifier
from sqlalchemy import select

from gateway.delivery.plumbing import PLUMBING_SERVICES
from gateway.intake.catalog import ServiceCatalog
from gateway.messages.models import Message
from gateway.sdk.receipts import sent_digests
from gateway.sdk.recipient import verify_delivery
from gateway.security.policy import ALLOWED_DIGESTS, ALLOWED_SIGNATURE_METHODS, EXCLUSIVE_C14N
from gateway.security.verify import SIGNATURE_LOCATION
from gateway.settings import SCHEMAS_DIR, Settings
from gateway.store.db import transaction
from gateway.xmlparse import parse_untrusted
from tests.conftest import EDUCATION_DEPARTMENT, HUKOU_OFFICE, UNIVERSITY, Signer, credentials
from tests.mailbox.helpers import (
    NS,
    SENDER,
    SERVICE,
    Answer,
    acknowledge_request,
    age_claims,
    ask,
    delivered_ids,
    deliveries,
    fetch_request,
    plumbing_envelope,
    post,
    results,
    send_to_pull_recipient,
)

MAILBOX = EDUCATION_DEPARTMENT  # a pull recipient, as every demo participant is by default


def canonical(element: etree._Element) -> bytes:
    return bytes(etree.tostring(element, method="c14n", exclusive=True))


def fetch(client: FlaskClient, sign: Signer, max_messages: int | None = None, as_: str = MAILBOX) -> Answer:
    answer = ask(client, sign, fetch_request(max_messages), as_)
    assert answer.status_code == 200, answer.fault_message
    return answer


def test_the_gateway_answers_every_plumbing_service_of_the_wsdl() -> None:
    plumbing = {s.name for s in ServiceCatalog(SCHEMAS_DIR).services if s.is_plumbing}
    assert plumbing == PLUMBING_SERVICES
    assert plumbing == {"FetchMessages", "AcknowledgeMessages", "MessageStatus", "DeliveryReceiptRequest"}


def test_a_fetched_message_is_the_original_with_the_senders_signature_intact(
    app: Flask, client: FlaskClient, sign: Signer, settings: Settings, anchors: tuple[Path, ...]
) -> None:
    message_id = send_to_pull_recipient(client, sign)
    answer = fetch(client, sign)
    assert answer.body.tag == "{urn:gradex:gateway:1}FetchMessagesResponse"
    assert app.extensions["gateway"].catalog.schema.validate(answer.envelope)
    [element] = answer.body.iterfind("gw:Delivery", NS)
    delivery = verify_delivery(element, anchors)  # the gateway's signature
    assert (delivery.message_id, delivery.sender, delivery.recipient, delivery.service, delivery.attempt) == (
        message_id,
        SENDER,
        MAILBOX,
        SERVICE,
        1,
    )
    # The original envelope, exactly as stored, and the sender's own signature over it verifies.
    with transaction(app.extensions["gateway"].sessions) as session:
        stored = session.scalars(select(Message).where(Message.message_id == message_id)).one()
    as_stored = parse_untrusted(app.extensions["gateway"].payloads.open_envelope(stored)).getroot()
    assert canonical(delivery.original) == canonical(as_stored)
    original = parse_untrusted(etree.tostring(delivery.original)).getroot()
    assert set(sent_digests(original)) == {"Body", "Timestamp", "Routing"}
    config = SignatureConfiguration(
        location=SIGNATURE_LOCATION,
        expect_references=3,
        signature_methods=ALLOWED_SIGNATURE_METHODS,
        digest_algorithms=ALLOWED_DIGESTS,
        default_reference_c14n_method=EXCLUSIVE_C14N,
    )
    certificate = credentials(settings.keys_dir, SENDER).certificate
    XMLVerifier().verify(original, x509_cert=certificate, id_attribute="Id", expect_config=config)
    [row] = deliveries(app)
    assert (row.status, row.attempts) == ("in_delivery", 1)
    assert row.claimed_at is not None


def test_a_fetched_message_is_offered_again_only_after_the_visibility_timeout(
    app: Flask, client: FlaskClient, sign: Signer
) -> None:
    message_id = send_to_pull_recipient(client, sign)
    assert delivered_ids(fetch(client, sign)) == [message_id]
    assert delivered_ids(fetch(client, sign)) == []  # invisible while the first fetcher works on it
    age_claims(app, 290)
    assert delivered_ids(fetch(client, sign)) == []  # 300 s by default
    age_claims(app, 20)
    again = fetch(client, sign)
    assert delivered_ids(again) == [message_id]
    assert again.body.findtext("gw:Delivery/gw:Attempt", namespaces=NS) == "2"
    [row] = deliveries(app)
    assert (row.status, row.attempts) == ("in_delivery", 2)


def test_fetch_hands_out_the_oldest_first_in_bounded_batches(app: Flask, client: FlaskClient, sign: Signer) -> None:
    sent = [send_to_pull_recipient(client, sign) for _ in range(12)]
    assert delivered_ids(fetch(client, sign, 2)) == sent[:2]
    assert delivered_ids(fetch(client, sign)) == sent[2:12]  # 10 by default
    assert delivered_ids(fetch(client, sign, 100)) == []
    assert delivered_ids(fetch(client, sign, 5, as_=UNIVERSITY)) == []  # another mailbox


@pytest.mark.parametrize("max_messages", [0, 101])
def test_a_batch_is_1_to_100_messages(client: FlaskClient, sign: Signer, max_messages: int) -> None:
    answer = ask(client, sign, fetch_request(max_messages), MAILBOX)
    assert answer.fault_code == "SCHEMA_VIOLATION"


def test_an_acknowledged_message_is_delivered_and_never_offered_again(
    app: Flask, client: FlaskClient, sign: Signer
) -> None:
    message_id = send_to_pull_recipient(client, sign)
    fetch(client, sign)
    answer = ask(client, sign, acknowledge_request((message_id, SENDER)), MAILBOX)
    assert answer.body.tag == "{urn:gradex:gateway:1}AcknowledgeMessagesResponse"
    assert app.extensions["gateway"].catalog.schema.validate(answer.envelope)
    assert results(answer) == [(message_id, SENDER, "acknowledged")]
    [row] = deliveries(app)
    assert row.status == "delivered" and row.delivered_at is not None
    age_claims(app, 3600)
    assert delivered_ids(fetch(client, sign)) == []


def test_each_acknowledgement_is_reported_and_none_fails_the_request(
    app: Flask, client: FlaskClient, sign: Signer
) -> None:
    fetched, waiting = send_to_pull_recipient(client, sign), send_to_pull_recipient(client, sign)
    assert delivered_ids(fetch(client, sign, 1)) == [fetched]
    stranger = str(uuid.uuid4())
    answer = ask(
        client,
        sign,
        acknowledge_request(
            (fetched, SENDER),
            (fetched, SENDER),  # twice in one request
            (waiting, SENDER),  # never fetched
            (stranger, SENDER),  # no such message
            (fetched, HUKOU_OFFICE),  # the right id from another sender
        ),
        MAILBOX,
    )
    assert [status for _, _, status in results(answer)] == [
        "acknowledged",
        "already_acknowledged",
        "unknown",
        "unknown",
        "unknown",
    ]
    again = ask(client, sign, acknowledge_request((fetched, SENDER)), MAILBOX)
    assert results(again) == [(fetched, SENDER, "already_acknowledged")]  # idempotent
    # Someone else's mailbox: fetched there, but not acknowledged by another participant.
    assert delivered_ids(fetch(client, sign)) == [waiting]
    foreign = ask(client, sign, acknowledge_request((waiting, SENDER)), HUKOU_OFFICE)
    assert results(foreign) == [(waiting, SENDER, "unknown")]
    assert [d.status for d in deliveries(app)] == ["delivered", "in_delivery"]


def test_a_plumbing_request_is_stored_as_evidence_without_delivery_or_receipt(
    app: Flask, client: FlaskClient, sign: Signer
) -> None:
    answer = fetch(client, sign)
    assert answer.envelope.find(".//gw:Receipt", NS) is None
    with transaction(app.extensions["gateway"].sessions) as session:
        [stored] = session.scalars(select(Message)).all()
        assert (stored.service, stored.sender_id, stored.recipient_id) == ("FetchMessages", MAILBOX, MAILBOX)
        assert stored.deliveries == [] and stored.receipt is None


def test_a_plumbing_request_goes_to_the_senders_own_mailbox(client: FlaskClient, sign: Signer) -> None:
    answer = post(client, plumbing_envelope(sign, fetch_request(), MAILBOX, recipient=HUKOU_OFFICE))
    assert answer.fault_code == "PLUMBING_RECIPIENT"
    assert MAILBOX in answer.fault_message and HUKOU_OFFICE in answer.fault_message


def test_a_replayed_fetch_is_refused_and_claims_nothing(app: Flask, client: FlaskClient, sign: Signer) -> None:
    message_id = send_to_pull_recipient(client, sign)
    request = plumbing_envelope(sign, fetch_request(), MAILBOX)
    assert delivered_ids(post(client, request)) == [message_id]
    age_claims(app, 3600)  # the message would be offered again to a fresh fetch
    replayed = post(client, request)
    assert replayed.fault_code == "REPLAY"
    assert [d.attempts for d in deliveries(app)] == [1]


# --- concurrency: on SQLite and on the real PostgreSQL ------------------------------------------


def test_concurrent_fetches_never_hand_out_the_same_message(store_app: Flask, sign: Signer) -> None:
    client = store_app.test_client()
    sent = {send_to_pull_recipient(client, sign) for _ in range(8)}
    fetchers = 4
    requests = [plumbing_envelope(sign, fetch_request(3), MAILBOX) for _ in range(fetchers)]
    start = threading.Barrier(fetchers)
    handed: list[list[str]] = [[] for _ in range(fetchers)]

    def fetch_concurrently(index: int) -> None:
        own_client = store_app.test_client()
        start.wait()
        handed[index] = delivered_ids(post(own_client, requests[index]))

    threads = [threading.Thread(target=fetch_concurrently, args=(i,)) for i in range(fetchers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    everything = [message_id for batch in handed for message_id in batch]
    assert len(everything) == len(set(everything))  # no message twice
    assert set(everything) == sent  # and, with 4 x 3 places for 8 messages, none left behind
    assert all(d.attempts == 1 for d in deliveries(store_app))
