"""Per-recipient fairness (issue 13, item 4): a recipient that does not answer is backed off and its
deliveries deferred without holding worker threads, so the others' deliveries do not wait."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
from dramatiq.brokers.redis import RedisBroker
from flask import Flask
from lxml import etree
from sqlalchemy import select, update

from gateway.bootstrap import ensure_platform, gateway_key_paths
from gateway.delivery.fairness import RecipientGate
from gateway.delivery.policy import RetryPolicy
from gateway.delivery.service import IDLE_POLL_MS, QUEUE, DeliveryService, Sweeper, start_worker
from gateway.messages.models import Delivery
from gateway.registry.models import Participant
from gateway.settings import Settings
from gateway.store.db import transaction
from gateway.web.app import create_app
from tests.conftest import AGENCY_CHAOYANG, EDUCATION_DEPARTMENT, REDIS_URL, require
from tests.delivery.faults_recipient import FaultyRecipient, serve_faulty_recipient
from tests.delivery.recipients import RecordingRecipient, serve_recipient
from tests.delivery.test_push import anchors, push_to  # noqa: F401
from tests.delivery.test_sweep import CountSends

T0 = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)

# --- the gate alone -------------------------------------------------------------------------------


def test_a_recipient_that_answers_is_never_held_back_without_a_limit() -> None:
    gate = RecipientGate()
    for _ in range(20):
        assert gate.admit("A", T0, 10).allowed
    for _ in range(20):
        gate.release("A", True, T0)  # rejections count as answers too
    assert gate.held("A", T0) is None and gate.snapshot() == {}


def test_a_recipient_keeps_to_its_share_of_the_threads() -> None:
    gate = RecipientGate(max_in_flight=2)
    assert gate.admit("A", T0, 10).allowed
    gate.release("A", True, T0)  # it has answered: its full share from now on
    assert gate.admit("A", T0, 10).allowed and gate.admit("A", T0, 10).allowed
    assert gate.held("A", T0) is None  # at its limit, but nothing says its pushes are slow yet
    third = gate.admit("A", T0, 10, wait=False)
    assert not third.allowed and third.until == T0 + timedelta(seconds=1)
    assert "2 deliveries in flight, its share" in third.reason
    assert gate.snapshot()["A"]["saturated"]  # saturated: the next delivery...
    refusal = gate.held("A", T0)
    assert refusal is not None and not refusal.allowed  # ...and deferred without waiting
    assert gate.admit("B", T0, 10).allowed  # others are not affected
    gate.release("A", True, T0)  # a push ended: a slot is free, nothing is held back
    assert not gate.snapshot()["A"]["saturated"] and gate.held("A", T0) is None
    assert gate.admit("A", T0, 10, wait=False).allowed


def test_a_delivery_over_the_limit_waits_a_moment_for_a_slot() -> None:
    gate = RecipientGate(max_in_flight=1, slot_wait=0.3)
    assert gate.admit("A", T0, 10).allowed
    threading.Timer(0.05, gate.release, ("A", True, T0)).start()  # a slot frees in time
    started = time.monotonic()
    assert gate.admit("A", T0, 10).allowed
    assert time.monotonic() - started < 0.29
    started = time.monotonic()  # nothing ends now: it waits its 0.3 s, then the recipient is saturated
    refused = gate.admit("A", T0, 10)
    waited = time.monotonic() - started
    assert not refused.allowed and 0.28 < waited < 2.0, waited
    started = time.monotonic()
    assert not gate.admit("A", T0, 10).allowed  # saturated: refused without waiting
    assert time.monotonic() - started < 0.05
    started = time.monotonic()
    assert gate.admit("B", T0, 10).allowed  # another recipient is not held up
    assert time.monotonic() - started < 0.05


def test_silence_limits_a_recipient_to_one_delivery_then_opens_its_circuit_with_growing_backoff() -> None:
    gate = RecipientGate(trip_after=3, open_seconds=30, cap_seconds=100)
    assert gate.admit("A", T0, 10).allowed
    gate.release("A", False, T0)  # a timeout: suspect
    assert gate.snapshot()["A"]["failures"] == 1
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
    assert "A" not in gate.snapshot()
    assert all(gate.admit("A", T0 + timedelta(seconds=194), 10).allowed for _ in range(5))


def test_a_delivery_never_pushed_teaches_nothing() -> None:
    gate = RecipientGate()
    assert gate.admit("A", T0, 10).allowed
    gate.release("A", None, T0)
    assert gate.snapshot() == {}


def test_a_recipient_that_never_answered_is_waited_for_only_a_few_typical_pushes() -> None:
    gate = RecipientGate(max_in_flight=1, slot_wait=0.5, cold_wait_floor=0.05)
    for _ in range(3):  # B answers in 20 ms: this worker's pushes typically take 20 ms
        assert gate.admit("B", T0, 10).allowed
        gate.release("B", True, T0, took=0.02)
    assert gate.typical_push == pytest.approx(0.02)
    assert gate.admit("A", T0, 10).allowed  # A's first push hangs
    started = time.monotonic()
    refused = gate.admit("A", T0, 10)  # waits 4 x 20 ms, not the 0.5 s slot wait
    waited = time.monotonic() - started
    assert not refused.allowed and 0.07 < waited < 0.4, waited
    gate.release("A", True, T0, took=3.0)  # A answers at last (slowly): from now on, the full wait
    assert gate.admit("A", T0, 10).allowed
    started = time.monotonic()
    assert not gate.admit("A", T0, 10).allowed
    assert 0.45 < time.monotonic() - started < 2.0
    assert gate.typical_push == pytest.approx(0.02 + (3.0 - 0.02) / 16)  # a moving average


def test_a_recipient_that_never_answered_has_half_its_share_until_it_does() -> None:
    gate = RecipientGate(max_in_flight=4)
    assert gate.admit("A", T0, 10).allowed and gate.admit("A", T0, 10).allowed
    assert not gate.admit("A", T0, 10, wait=False).allowed  # 2 of its 4 while nothing is known
    gate.release("A", True, T0, took=0.01)  # it answers: its full share
    assert all(gate.admit("A", T0, 10, wait=False).allowed for _ in range(3))
    assert not gate.admit("A", T0, 10, wait=False).allowed  # 4 in flight


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


def resend_deferred(service: DeliveryService, ids: list[int]) -> None:
    """Send again those of ``ids`` deferred, as the sweep would (no sweep runs in the test).

    A healthy delivery over its recipient's share of the threads waits a moment for a slot and is
    then deferred; on a loaded machine a healthy push can outlast that moment. The sweep would send
    it again once due; here it is made due and sent at once, and the slow recipient is left alone.
    """
    with transaction(service.sessions) as session:
        deferred = list(
            session.scalars(
                update(Delivery)
                .where(Delivery.id.in_(ids), Delivery.status == "waiting_for_retry")
                .values(next_attempt_at=datetime.now(UTC))
                .returning(Delivery.id)
            )
        )
    service.enqueue(deferred)


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
                resend_deferred(service, healthy_ids)
            healthy_done = time.monotonic() - started
            service.broker.join(QUEUE, timeout=30_000)
            worker.join()
        finally:
            worker.stop()
    assert statuses(app, healthy_ids) == {"delivered": 10}
    # Without the gate the healthy deliveries wait behind 15 rounds of 1 s timeouts (15 s and more).
    print(f"healthy recipient delivered in {healthy_done:.1f} s")
    assert healthy_done < 9.0, f"the healthy recipient's deliveries took {healthy_done:.1f} s"
    # The slow recipient was tried by its share of the threads while it has never answered (a
    # quarter of them), the rest deferred; with no sweep running here, nothing probes it again.
    with transaction(service.sessions) as session:
        rows = session.execute(
            select(Delivery.status, Delivery.attempts, Delivery.last_error).where(Delivery.id.in_(slow_ids))
        ).all()
    attempts = sum(r.attempts for r in rows)
    assert attempts == THREADS // 4, attempts
    assert {r.status for r in rows} == {"waiting_for_retry"}
    deferred = [r for r in rows if r.attempts == 0]
    assert len(deferred) == 60 - THREADS // 4
    assert all((r.last_error or "").startswith("deferred: ") for r in deferred)
    assert service.gate.snapshot()[SLOW]["failures"] == THREADS // 4  # one delivery at a time from now on


# --- PostgreSQL and Redis, a recipient that sleeps, as in production ---------------------------------

SLOW_TIMEOUT = 3  # the slow recipient's push timeout (it answers after 4 s)


@pytest.fixture
def production(store_settings: Settings) -> Iterator[tuple[Flask, DeliveryService]]:
    """The app on PostgreSQL, its delivery service on a Redis namespace of the test's own, with
    recovery times short enough for a test (retries after 0.2 s, circuits open 0.5 s)."""
    require("Redis", lambda: redis.Redis.from_url(REDIS_URL).ping())
    app = create_app(store_settings)
    context = app.extensions["gateway"]
    with transaction(context.sessions) as session:  # the sender of the gateway's own messages
        certificate = gateway_key_paths(store_settings.keys_dir)[1].read_bytes()
        ensure_platform(session, store_settings, certificate, datetime.now(UTC))
    broker = RedisBroker(url=REDIS_URL, namespace=f"test-fairness-{uuid.uuid4().hex[:8]}")  # type: ignore[no-untyped-call]
    service = dataclasses.replace(context.delivery, broker=broker, policy=RetryPolicy(base_seconds=0.2))
    service.gate.open_seconds = 0.5
    app.extensions["gateway"] = dataclasses.replace(context, broker=broker, delivery=service)
    try:
        yield app, service
    finally:
        broker.flush_all()  # type: ignore[no-untyped-call]
        broker.client.close()
        context.engine.dispose()


@pytest.mark.parametrize("store_settings", ["postgresql"], indirect=True)
def test_a_recipient_that_sleeps_holds_only_its_share_of_the_threads(
    production: tuple[Flask, DeliveryService],
    anchors: tuple,  # type: ignore[type-arg]  # noqa: F811
) -> None:
    app, service = production
    slow = FaultyRecipient(mode="slow", slow_seconds=SLOW_TIMEOUT + 1.0)
    healthy = FaultyRecipient()
    with serve_faulty_recipient(slow, anchors) as slow_endpoint, serve_faulty_recipient(healthy, anchors) as endpoint:
        push_to(app, SLOW, slow_endpoint, timeout=SLOW_TIMEOUT, attempts=50)
        push_to(app, HEALTHY, endpoint, timeout=10, attempts=50)
        slow_ids = originate(app, SLOW, 12)  # first in the queue: without a limit they take every thread
        healthy_ids = originate(app, HEALTHY, 12)
        service.enqueue(slow_ids + healthy_ids)
        worker = start_worker(service, threads=THREADS)  # at most 2 pushes to one recipient (1 until it answers)
        sweeper = Sweeper(service, interval=0.3)
        started = time.monotonic()
        try:
            sweeper.start()
            while statuses(app, healthy_ids) != {"delivered": 12} and time.monotonic() - started < 30:
                time.sleep(0.05)
            healthy_done = time.monotonic() - started
            holding, most = service.gate.snapshot().get(SLOW, {}), slow.most_in_flight
            first_wave = dict(statuses(app, slow_ids))
            print(f"healthy recipient delivered in {healthy_done:.2f} s; {slow.snapshot()}")
            # The healthy deliveries were all delivered while the slow recipient's first pushes still
            # hung (before its timeout), by the threads it could not take.
            assert statuses(app, healthy_ids) == {"delivered": 12}
            assert healthy_done < SLOW_TIMEOUT, f"the healthy deliveries took {healthy_done:.2f} s"
            assert holding.get("in_flight") == 1 and slow.in_flight == 1, (holding, slow.snapshot())
            assert most == 1, slow.snapshot()  # never more than its share (never answered: half of it)
            assert first_wave.get("waiting_for_retry", 0) >= 12 - 1 - 1, first_wave  # deferred, no thread held
            slow.switch("accept")  # it recovers: everything is delivered, once
            while statuses(app, slow_ids) != {"delivered": 12} and time.monotonic() - started < 60:
                time.sleep(0.1)
        finally:
            sweeper.stop()
            worker.stop()
        assert statuses(app, slow_ids) == {"delivered": 12}, (statuses(app, slow_ids), slow.snapshot())
    assert sorted(slow.handled.values()) == [1] * 12 and sorted(healthy.handled.values()) == [1] * 12
    assert healthy.duplicates == 0
    with transaction(service.sessions) as session:
        rows = session.execute(select(Delivery.attempts, Delivery.last_error).where(Delivery.id.in_(slow_ids))).all()
    # The two pushes that timed out were tried again; the deferred ones cost no attempt.
    assert sum(r.attempts for r in rows) <= 12 + 2 + 2, [r.attempts for r in rows]


@pytest.mark.parametrize("store_settings", ["postgresql"], indirect=True)
def test_an_idle_worker_looks_for_new_messages_every_tenth_of_a_second(
    production: tuple[Flask, DeliveryService],
) -> None:
    """dramatiq's Redis consumer polls an empty queue again after a backoff that grows to its
    worker timeout (1 s by default): the first delivery after a quiet moment waited up to a
    second. bench/delivery measures the effect; this checks what the consumer was given."""
    _, service = production
    worker = start_worker(service, threads=2)
    try:
        consumer = worker.consumers[QUEUE]
        deadline = time.monotonic() + 10
        while getattr(consumer, "consumer", None) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert consumer.consumer.timeout == IDLE_POLL_MS == 100  # ms, the most an idle poll backs off
    finally:
        worker.stop()


# --- the sweep and a recipient held back ---------------------------------------------------------


def test_the_sweep_defers_a_held_back_recipients_deliveries_in_bulk_and_sends_one_probe(app: Flask) -> None:
    service = app.extensions["gateway"].delivery
    counter = CountSends()
    service.broker.add_middleware(counter)
    push_to(app, SLOW, "http://127.0.0.1:9/soap", timeout=1, attempts=8)
    push_to(app, HEALTHY, "http://127.0.0.1:9/soap", timeout=10)
    slow_ids, healthy_ids = originate(app, SLOW, 5), originate(app, HEALTHY, 3)
    past = datetime.now(UTC) - timedelta(minutes=1)

    def all_due() -> None:
        with transaction(service.sessions) as session:
            session.execute(
                update(Delivery)
                .where(Delivery.id.in_(slow_ids + healthy_ids))
                .values(status="waiting_for_retry", next_attempt_at=past, updated_at=past)
            )

    def fail_three_times(gate: RecipientGate) -> None:
        for _ in range(3):
            assert gate.admit(SLOW, datetime.now(UTC), 1, wait=False).allowed
            gate.release(SLOW, False, datetime.now(UTC))

    fail_three_times(service.gate)  # its circuit is open for 30 s
    all_due()
    assert service.sweep() == 3 and counter.sent == 3  # only the healthy recipient's deliveries go
    with transaction(service.sessions) as session:
        rows = session.execute(
            select(Delivery.status, Delivery.next_attempt_at, Delivery.attempts, Delivery.last_error).where(
                Delivery.id.in_(slow_ids)
            )
        ).all()
    open_until = service.gate.snapshot()[SLOW]["open_until"]
    assert {(r.status, r.attempts) for r in rows} == {("waiting_for_retry", 0)}  # deferred, no attempt counted
    assert {r.next_attempt_at.replace(tzinfo=UTC) for r in rows} == {open_until}, (rows, open_until)
    assert all(r.last_error.startswith("deferred: ") for r in rows)

    service.gate = RecipientGate(open_seconds=0)  # its open time is up: one delivery probes
    fail_three_times(service.gate)
    all_due()
    assert service.sweep() == 4 and counter.sent == 3 + 4  # the healthy three and one probe
    assert statuses(app, slow_ids) == {"queued": 1, "waiting_for_retry": 4}
