"""Held-back deliveries deferred before their claim, many to a transaction, nobody waiting (issue 13,
item 4: a dead recipient's backlog must not hold up the others' deliveries queued behind it)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, select, update

from gateway.delivery import outbox
from gateway.delivery.deferrals import Deferral, Deferrals
from gateway.delivery.service import QUEUE
from gateway.messages.models import Delivery
from gateway.store.db import transaction
from tests.conftest import AGENCY_CHAOYANG, EDUCATION_DEPARTMENT
from tests.delivery.test_fairness import originate
from tests.delivery.test_push import push_to

REASON = "deferred: a test"


def rows(app: Flask, ids: list[int]) -> dict[int, Any]:
    with transaction(app.extensions["gateway"].sessions) as session:
        columns = (Delivery.id, Delivery.status, Delivery.attempts, Delivery.last_error, Delivery.next_attempt_at)
        found = session.execute(select(*columns).where(Delivery.id.in_(ids)))
        return {row.id: row for row in found}


@contextmanager
def statements(app: Flask) -> Iterator[list[str]]:
    """The SQL statements the app's engine runs meanwhile."""
    seen: list[str] = []
    engine = app.extensions["gateway"].engine

    def note(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


def test_deferrals_arriving_while_one_is_written_are_written_together_without_waiting(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    push_to(app, AGENCY_CHAOYANG, "http://127.0.0.1:9/soap")
    ids = originate(app, AGENCY_CHAOYANG, 10)
    context = app.extensions["gateway"]
    deferrals = Deferrals(context.engine, context.clock, context.delivery.policy)
    until = datetime.now(UTC) + timedelta(minutes=5)
    first_write, go_on = threading.Event(), threading.Event()
    real_write = deferrals._write

    def slow_first(batch: list[Deferral]) -> None:
        if not first_write.is_set():
            first_write.set()
            assert go_on.wait(10)
        real_write(batch)

    monkeypatch.setattr(deferrals, "_write", slow_first)
    writer = threading.Thread(target=deferrals.add, args=(Deferral(ids[0], AGENCY_CHAOYANG, until, REASON),))
    writer.start()
    assert first_write.wait(10)  # the first thread is writing its deferral (and holds on)
    started = time.monotonic()
    for delivery_id in ids[1:]:
        deferrals.add(Deferral(delivery_id, AGENCY_CHAOYANG, until, REASON))
    assert time.monotonic() - started < 0.5  # the others only added theirs and went on
    assert {r.status for r in rows(app, ids[1:]).values()} == {"accepted"}  # not written yet
    go_on.set()
    writer.join(10)
    assert deferrals.batches == 2 and deferrals.written == 10  # the nine in one transaction
    found = rows(app, ids)
    assert {(r.status, r.attempts, r.last_error) for r in found.values()} == {("waiting_for_retry", 0, REASON)}
    assert {r.next_attempt_at.replace(tzinfo=UTC) for r in found.values()} == {until}


def test_a_deferral_that_cannot_be_written_is_left_to_the_sweep(
    app: Flask, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    push_to(app, AGENCY_CHAOYANG, "http://127.0.0.1:9/soap")
    ids = originate(app, AGENCY_CHAOYANG, 2)
    context = app.extensions["gateway"]
    deferrals = Deferrals(context.engine, context.clock, context.delivery.policy)

    def broken(*_: Any) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(outbox, "defer", broken)
    until = datetime.now(UTC) + timedelta(minutes=5)
    deferrals.add(Deferral(ids[0], AGENCY_CHAOYANG, until, REASON))  # raises nothing to the worker's thread
    assert "could not defer 1 deliveries; the sweep sends them again" in caplog.text
    assert {r.status for r in rows(app, ids).values()} == {"accepted"}  # as the sweep will find them
    monkeypatch.undo()
    deferrals.add(Deferral(ids[1], AGENCY_CHAOYANG, until, REASON))  # and the next one is written again
    assert rows(app, [ids[1]])[ids[1]].status == "waiting_for_retry"


def test_a_broker_message_naming_a_held_back_recipient_is_deferred_without_a_claim_or_a_look_up(app: Flask) -> None:
    service = app.extensions["gateway"].delivery
    push_to(app, EDUCATION_DEPARTMENT, "http://127.0.0.1:9/soap", timeout=1, attempts=8)
    ids = originate(app, EDUCATION_DEPARTMENT, 3)
    now = datetime.now(UTC)
    for _ in range(3):  # three transport failures: its circuit is open
        assert service.gate.admit(EDUCATION_DEPARTMENT, now, 1, wait=False).allowed
        service.gate.release(EDUCATION_DEPARTMENT, False, now)
    with statements(app) as seen:
        service.deliver(ids[0], EDUCATION_DEPARTMENT)
    assert [s.split()[0] for s in seen if not s.startswith(("BEGIN", "COMMIT", "ROLLBACK"))] == ["UPDATE"]
    assert rows(app, ids[:1])[ids[0]].status == "waiting_for_retry"
    with statements(app) as seen:
        service.deliver(ids[1])  # a message without the recipient (queued by an older version)
    assert seen[0].lstrip().startswith("SELECT") and "FROM deliveries" in seen[0]  # whom it goes to: one look-up
    found = rows(app, ids)
    assert found[ids[1]].status == "waiting_for_retry" and found[ids[1]].attempts == 0
    assert found[ids[1]].last_error.startswith(f"deferred: {EDUCATION_DEPARTMENT} failed to answer 3 times")
    assert found[ids[2]].status == "accepted"


def test_broker_messages_name_the_recipient_when_the_sender_knows_it(app: Flask) -> None:
    service = app.extensions["gateway"].delivery
    push_to(app, AGENCY_CHAOYANG, "http://127.0.0.1:9/soap")
    ids = originate(app, AGENCY_CHAOYANG, 3)
    service.enqueue(ids[:1], {ids[0]: AGENCY_CHAOYANG})  # as the intake does
    service.enqueue(ids[1:2])  # no recipient known: the id alone, which a worker looks up
    past = datetime.now(UTC) - timedelta(minutes=1)
    with transaction(service.sessions) as session:
        session.execute(
            update(Delivery).where(Delivery.id == ids[2]).values(status="waiting_for_retry", next_attempt_at=past)
        )
    assert service.sweep() == 1  # the sweep knows each delivery's recipient
    queued = [service.broker.queues[QUEUE].get_nowait() for _ in range(3)]
    assert b'"args":[%d,"%s"]' % (ids[0], AGENCY_CHAOYANG.encode()) in queued[0]
    assert b'"args":[%d]' % ids[1] in queued[1]
    assert b'"args":[%d,"%s"]' % (ids[2], AGENCY_CHAOYANG.encode()) in queued[2]
