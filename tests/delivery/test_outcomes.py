"""Push outcomes recorded many to a transaction (issue 13, item 4: fewer transactions per attempt),
each one exact: its status, its audit entry, and a failing one costs only its own thread."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, update

from gateway.audit.models import AuditEntry
from gateway.delivery import outbox
from gateway.delivery.outcomes import Outcome, OutcomeRecorder
from gateway.messages.models import Delivery
from gateway.store.db import transaction
from tests.conftest import AGENCY_CHAOYANG
from tests.delivery.test_fairness import originate

THREADS = 8


def in_delivery(app: Flask, count: int) -> list[int]:
    ids = originate(app, AGENCY_CHAOYANG, count)
    with transaction(app.extensions["gateway"].sessions) as session:
        session.execute(update(Delivery).where(Delivery.id.in_(ids)).values(status="in_delivery", attempts=1))
    return ids


def record_all(recorder: OutcomeRecorder, outcomes: list[Outcome]) -> dict[int, Any]:
    """Each outcome recorded from a thread of its own, all released at once; status or exception."""
    results: dict[int, Any] = {}
    start = threading.Barrier(len(outcomes))

    def one(outcome: Outcome) -> None:
        start.wait()
        try:
            results[outcome.delivery_id] = recorder.record(outcome)
        except Exception as exc:
            results[outcome.delivery_id] = exc

    threads = [threading.Thread(target=one, args=(o,)) for o in outcomes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def audit_entries(app: Flask, kind: str) -> int:
    with transaction(app.extensions["gateway"].sessions) as session:
        return int(session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.kind == kind)) or 0)


def test_outcomes_that_arrive_together_share_a_transaction(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = in_delivery(app, THREADS)
    recorder: OutcomeRecorder = app.extensions["gateway"].delivery.outcomes
    slow_first = outbox.delivered
    calls = {"n": 0}

    def delivered(session: Any, delivery_id: int, now: datetime) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            time.sleep(0.5)  # the first writer is slow: the others arrive while it writes
        slow_first(session, delivery_id, now)

    monkeypatch.setattr(outbox, "delivered", delivered)
    outcomes = [Outcome(i, f"m-{i}", AGENCY_CHAOYANG, 1, 8, None) for i in ids]
    results = record_all(recorder, outcomes)
    assert results == {i: "delivered" for i in ids}
    assert recorder.recorded == THREADS
    assert recorder.batches < THREADS  # 2 when the machine keeps up: the slow first, then the rest together
    with transaction(app.extensions["gateway"].sessions) as session:
        assert set(session.scalars(select(Delivery.status).where(Delivery.id.in_(ids)))) == {"delivered"}
    assert audit_entries(app, "delivery.delivered") == THREADS


def test_one_failing_outcome_costs_only_its_own_thread(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = in_delivery(app, 4)
    recorder: OutcomeRecorder = app.extensions["gateway"].delivery.outcomes
    real = outbox.failed_attempt

    def failed_attempt(session: Any, delivery_id: int, *args: Any) -> str:
        if delivery_id == ids[0]:
            raise RuntimeError("the database refused this one")
        return real(session, delivery_id, *args)

    monkeypatch.setattr(outbox, "failed_attempt", failed_attempt)
    outcomes = [Outcome(i, f"m-{i}", AGENCY_CHAOYANG, 1, 8, "HTTP 500") for i in ids]
    outcomes[-1] = Outcome(ids[-1], "m-last", AGENCY_CHAOYANG, 8, 8, "HTTP 500")  # its last attempt
    results = record_all(recorder, outcomes)
    assert isinstance(results[ids[0]], RuntimeError)
    assert [results[i] for i in ids[1:]] == ["waiting_for_retry", "waiting_for_retry", "failed"]
    with transaction(app.extensions["gateway"].sessions) as session:
        statuses = dict(session.execute(select(Delivery.id, Delivery.status).where(Delivery.id.in_(ids))).all())
    assert statuses == {
        ids[0]: "in_delivery",
        ids[1]: "waiting_for_retry",
        ids[2]: "waiting_for_retry",
        ids[3]: "failed",
    }
    assert audit_entries(app, "delivery.failed_attempt") == 2
    assert audit_entries(app, "delivery.dead_lettered") == 1
