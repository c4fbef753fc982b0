"""Per-recipient fairness (issue 13, item 4): a recipient that does not answer is backed off and its
deliveries deferred without holding worker threads, so the others' deliveries do not wait."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from flask import Flask
from lxml import etree
from sqlalchemy import select

from gateway.delivery.fairness import RecipientGate
from gateway.delivery.service import QUEUE, start_worker
from gateway.messages.models import Delivery
from gateway.registry.models import Participant
from gateway.store.db import transaction
from tests.conftest import AGENCY_CHAOYANG, EDUCATION_DEPARTMENT
from tests.delivery.recipients import RecordingRecipient, serve_recipient
from tests.delivery.test_push import anchors, push_to  # noqa: F401

T0 = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)

# --- the gate alone -------------------------------------------------------------------------------


def test_a_recipient_that_answers_is_never_held_back() -> None:
    gate = RecipientGate()
    for _ in range(20):
        assert gate.admit("A", T0, 10).allowed
    for _ in range(20):
        gate.release("A", True, T0)  # rejections count as answers too
    assert not gate.troubled()


def test_silence_limits_a_recipient_to_one_delivery_then_opens_its_circuit_with_growing_backoff() -> None:
    gate = RecipientGate(trip_after=3, open_seconds=30, cap_seconds=100)
    assert gate.admit("A", T0, 10).allowed
    gate.release("A", False, T0)  # a timeout: suspect
    assert gate.troubled()
    assert gate.admit("A", T0, 10).allowed  # one probe at a time...
    second = gate.admit("A", T0, 10)
    assert not second.allowed and second.until == T0 + timedelta(seconds=11)  # ...the next waits a push timeout
    assert gate.admit("B", T0, 10).allowed  # others are not affected
    gate.release("A", False, T0)
    assert gate.admit("A", T0, 10).allowed
    gate.release("A", False, T0)  # three in a row: open for 30 s
    refused = gate.admit("A", T0 + timedelta(seconds=29), 10)
    assert not refused.allowed and refused.until == T0 + timedelta(seconds=30)
    assert "failed to answer 3 times in a row" in refused.reason
    assert gate.admit("A", T0 + timedelta(seconds=30), 10).allowed  # the probe after the open time
    gate.release("A", False, T0 + timedelta(seconds=31))  # fails: open again, twice as long
    assert gate.admit("A", T0 + timedelta(seconds=90), 10).until == T0 + timedelta(seconds=91)
    assert gate.admit("A", T0 + timedelta(seconds=91), 10).allowed
    gate.release("A", False, T0 + timedelta(seconds=92))  # 120 s capped at 100
    assert gate.admit("A", T0 + timedelta(seconds=100), 10).until == T0 + timedelta(seconds=192)
    assert gate.admit("A", T0 + timedelta(seconds=192), 10).allowed
    gate.release("A", True, T0 + timedelta(seconds=193))  # it answers: closed, no limit
    assert not gate.troubled()
    assert all(gate.admit("A", T0 + timedelta(seconds=194), 10).allowed for _ in range(5))


def test_a_delivery_never_pushed_teaches_nothing() -> None:
    gate = RecipientGate()
    assert gate.admit("A", T0, 10).allowed
    gate.release("A", None, T0)
    assert not gate.troubled() and gate.snapshot() == {}


# --- a worker with a dead recipient and a healthy one ------------------------------------------------

SLOW, HEALTHY = EDUCATION_DEPARTMENT, AGENCY_CHAOYANG
THREADS = 4


def originate(app: Flask, recipient_id: str, count: int) -> list[int]:
    """``count`` gateway-originated messages to ``recipient_id``; their delivery ids."""
    context = app.extensions["gateway"]
    ids = []
    with transaction(context.sessions) as session:
        recipient = session.get(Participant, recipient_id)
        assert recipient is not None
        for n in range(count):
            document = etree.fromstring(f'<note xmlns="urn:test:fairness">{n}</note>')
            message = context.originator.send(session, document, "AgreementResponse", recipient, datetime.now(UTC))
            ids += [d.id for d in message.deliveries]
    return ids


def statuses(app: Flask, ids: list[int]) -> dict[str, int]:
    with transaction(app.extensions["gateway"].sessions) as session:
        found = list(session.scalars(select(Delivery.status).where(Delivery.id.in_(ids))))
    return {s: found.count(s) for s in set(found)}


def test_a_recipient_that_times_out_does_not_hold_up_the_others(app: Flask, anchors: tuple) -> None:  # type: ignore[type-arg]  # noqa: F811
    slow = RecordingRecipient(behaviour="slow", slow_seconds=4.0)  # the gateway waits 1 s
    healthy = RecordingRecipient()
    service = app.extensions["gateway"].delivery
    with serve_recipient(slow, anchors) as slow_endpoint, serve_recipient(healthy, anchors) as healthy_endpoint:
        push_to(app, SLOW, slow_endpoint, timeout=1, attempts=8)
        push_to(app, HEALTHY, healthy_endpoint, timeout=10)
        slow_ids = originate(app, SLOW, 60)  # first in the queue: 60 x 1 s over 4 threads without fairness
        healthy_ids = originate(app, HEALTHY, 10)
        service.enqueue(slow_ids + healthy_ids)
        worker = start_worker(service, threads=THREADS)
        started = time.monotonic()
        try:
            while statuses(app, healthy_ids) != {"delivered": 10} and time.monotonic() - started < 30:
                time.sleep(0.1)
            healthy_done = time.monotonic() - started
            service.broker.join(QUEUE, timeout=30_000)
            worker.join()
        finally:
            worker.stop()
    assert statuses(app, healthy_ids) == {"delivered": 10}
    # Without the gate the healthy deliveries wait behind 15 rounds of 1 s timeouts (15 s and more).
    print(f"healthy recipient delivered in {healthy_done:.1f} s")
    assert healthy_done < 9.0, f"the healthy recipient's deliveries took {healthy_done:.1f} s"
    # The slow recipient was tried by at most one round of threads plus a probe; the rest deferred.
    with transaction(service.sessions) as session:
        rows = session.execute(
            select(Delivery.status, Delivery.attempts, Delivery.last_error).where(Delivery.id.in_(slow_ids))
        ).all()
    attempts = sum(r.attempts for r in rows)
    assert attempts <= THREADS + 2, attempts
    assert {r.status for r in rows} == {"waiting_for_retry"}
    deferred = [r for r in rows if r.attempts == 0]
    assert len(deferred) >= 60 - THREADS - 2
    assert all((r.last_error or "").startswith("deferred: ") for r in deferred)
    assert service.gate.snapshot()[SLOW]["open_until"] is not None
