"""Push delivery through the dramatiq actor to a recipient that implements recipient-1.wsdl."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from gateway.audit.models import AuditEntry
from gateway.delivery.service import QUEUE, start_worker
from gateway.messages.models import Delivery, Message
from gateway.registry.models import Participant
from gateway.sdk.receipts import sent_digests
from gateway.settings import Settings
from gateway.store.db import transaction
from tests.conftest import EDUCATION_DEPARTMENT, UNIVERSITY, Signer, free_port
from tests.delivery.recipients import RecordingRecipient, serve_recipient
from tests.domain.helpers import send


def push_to(app: Flask, participant_id: str, endpoint: str, timeout: int = 2, attempts: int = 3) -> None:
    with transaction(app.extensions["gateway"].sessions) as session:
        session.execute(
            update(Participant)
            .where(Participant.id == participant_id)
            .values(
                delivery_mode="push",
                endpoint_url=endpoint,
                push_timeout_seconds=timeout,
                max_delivery_attempts=attempts,
            )
        )


def deliveries(app: Flask) -> list[Delivery]:
    with transaction(app.extensions["gateway"].sessions) as session:
        return list(session.scalars(select(Delivery).order_by(Delivery.id)))


def run_queue(app: Flask) -> None:
    """Work the in-process queue until it is empty, with a real dramatiq worker."""
    service = app.extensions["gateway"].delivery
    worker = start_worker(service, threads=2, per_recipient=2)  # one recipient may use both threads
    try:
        service.broker.join(QUEUE, timeout=30_000)
        worker.join()
    finally:
        worker.stop()


@pytest.fixture
def anchors(settings: Settings) -> tuple:  # type: ignore[type-arg]
    return (settings.keys_dir / "ca" / "ca.cert.pem",)


@pytest.fixture
def recipient(app: Flask, anchors: tuple) -> Iterator[RecordingRecipient]:  # type: ignore[type-arg]
    recording = RecordingRecipient()
    with serve_recipient(recording, anchors) as endpoint:
        push_to(app, EDUCATION_DEPARTMENT, endpoint)
        yield recording


def registration(client: FlaskClient, sign: Signer) -> None:
    """A message to the education department that may be sent again and again: a destination registration."""
    code, detail = send(client, sign, "destination-registration", UNIVERSITY, EDUCATION_DEPARTMENT)
    assert code is None, detail


def test_an_accepted_message_is_pushed_once_with_the_senders_signature_intact(
    app: Flask, client: FlaskClient, sign: Signer, recipient: RecordingRecipient
) -> None:
    registration(client, sign)
    assert [d.status for d in deliveries(app)] == ["queued"]
    run_queue(app)
    [delivery] = deliveries(app)
    assert (delivery.status, delivery.attempts) == ("delivered", 1)
    [received] = recipient.received
    with transaction(app.extensions["gateway"].sessions) as session:
        stored = session.scalars(select(Message)).one()
        assert (received.message_id, received.sender, received.service) == (
            stored.message_id,
            UNIVERSITY,
            "DestinationRegistration",
        )
    # The original envelope still carries the sender's signature over the same parts.
    assert set(sent_digests(received.original)) == {"Body", "Timestamp", "Routing"}
    # Acceptance and delivery are both in the audit log, in that order.
    with transaction(app.extensions["gateway"].sessions) as session:
        kinds = [e.kind for e in session.scalars(select(AuditEntry).order_by(AuditEntry.leaf_index))]
    assert [k for k in kinds if not k.startswith("registry.")] == ["message.accepted", "delivery.delivered"]


def test_a_second_broker_message_for_the_same_delivery_does_nothing(
    app: Flask, client: FlaskClient, sign: Signer, recipient: RecordingRecipient
) -> None:
    registration(client, sign)
    [delivery] = deliveries(app)
    app.extensions["gateway"].delivery.actor.send(delivery.id)  # a duplicate on the broker
    run_queue(app)
    assert len(recipient.received) == 1
    assert deliveries(app)[0].attempts == 1


def make_due(app: Flask) -> None:
    """Move every retry's time into the past (instead of waiting for the backoff)."""
    past = datetime.now(UTC) - timedelta(hours=1)
    with transaction(app.extensions["gateway"].sessions) as session:
        session.execute(update(Delivery).values(next_attempt_at=past))


def test_refusals_wait_for_retry_with_backoff_then_dead_letter(
    app: Flask, client: FlaskClient, sign: Signer, recipient: RecordingRecipient
) -> None:
    recipient.behaviour = "reject"
    registration(client, sign)
    run_queue(app)
    [first] = deliveries(app)
    assert (first.status, first.attempts) == ("waiting_for_retry", 1)
    assert first.next_attempt_at is not None and first.next_attempt_at > first.updated_at
    assert "rejected" in (first.last_error or "")
    service = app.extensions["gateway"].delivery
    for _ in range(2):
        make_due(app)
        assert service.sweep() == 1
        run_queue(app)
    [last] = deliveries(app)
    assert (last.status, last.attempts) == ("failed", 3)  # the recipient's limit: a dead letter
    assert len(recipient.received) == 3


def test_a_timeout_is_retried_and_the_recipient_sees_the_message_once(
    app: Flask, client: FlaskClient, sign: Signer, recipient: RecordingRecipient
) -> None:
    recipient.behaviour = "slow"  # answers after 3 s; the gateway waits 2 s
    registration(client, sign)
    run_queue(app)
    [first] = deliveries(app)
    assert first.status == "waiting_for_retry" and "Timeout" in (first.last_error or "")
    deadline = time.monotonic() + 10  # the recipient finishes handling the first push (after 3 s);
    while not recipient.received and time.monotonic() < deadline:  # a retry before that is told
        time.sleep(0.05)  # "still being handled" and waits for the next one
    recipient.behaviour = "accept"
    make_due(app)
    assert app.extensions["gateway"].delivery.sweep() == 1
    run_queue(app)
    assert [d.status for d in deliveries(app)] == ["delivered"]
    # The slow first attempt did reach the recipient; the second is recognised as a duplicate.
    assert len(recipient.received) == 1


def test_an_unreachable_endpoint_is_retried(app: Flask, client: FlaskClient, sign: Signer) -> None:
    push_to(app, EDUCATION_DEPARTMENT, f"http://127.0.0.1:{free_port()}/soap")
    registration(client, sign)
    run_queue(app)
    [delivery] = deliveries(app)
    assert delivery.status == "waiting_for_retry"
    assert "Connection" in (delivery.last_error or "")


def test_the_sweep_delivers_what_was_accepted_but_never_enqueued(
    app: Flask, client: FlaskClient, sign: Signer, recipient: RecordingRecipient
) -> None:
    service = app.extensions["gateway"].delivery
    service.enqueue = lambda ids, recipients=None: None  # the process "crashes" between commit and enqueue
    registration(client, sign)
    [delivery] = deliveries(app)
    assert delivery.status == "accepted"
    assert service.sweep() == 0  # within the grace period the intake may still enqueue it
    with transaction(service.sessions) as session:
        session.execute(update(Delivery).values(updated_at=delivery.created_at - timedelta(minutes=5)))
    assert service.sweep() == 1
    run_queue(app)
    assert [d.status for d in deliveries(app)] == ["delivered"]
    assert len(recipient.received) == 1
