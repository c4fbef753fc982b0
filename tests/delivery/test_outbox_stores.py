"""The outbox's prebuilt statements on SQLite and on PostgreSQL: the claim with what a push needs,
the outcome, a deferral, and the bulk retry of dead letters."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Connection, select, text, update
from sqlalchemy.exc import DBAPIError

from gateway.audit.log import sequence_pending
from gateway.audit.models import AuditEntry
from gateway.bootstrap import ensure_platform, gateway_key_paths
from gateway.delivery import outbox
from gateway.delivery import outcomes as outcomes_module
from gateway.delivery.outcomes import Outcome
from gateway.delivery.policy import RetryPolicy
from gateway.messages.models import Delivery, Message
from gateway.settings import Settings
from gateway.store.db import transaction
from gateway.store.deferred import write
from gateway.web.app import create_app
from tests.conftest import AGENCY_CHAOYANG
from tests.delivery.test_fairness import originate
from tests.delivery.test_push import push_to


@pytest.fixture
def store_app(store_settings: Settings) -> Iterator[Flask]:
    application = create_app(store_settings)
    _, certificate = gateway_key_paths(store_settings.keys_dir)
    with transaction(application.extensions["gateway"].sessions) as session:  # the sender of originated messages
        ensure_platform(session, store_settings, certificate.read_bytes(), datetime.now(UTC))
    push_to(application, AGENCY_CHAOYANG, "http://127.0.0.1:9/soap", timeout=7, attempts=4)
    yield application
    application.extensions["gateway"].engine.dispose()


def test_claim_outcome_and_deferral(store_app: Flask) -> None:
    sessions = store_app.extensions["gateway"].sessions
    first, second = originate(store_app, AGENCY_CHAOYANG, 2)
    now = datetime.now(UTC)
    policy = RetryPolicy()
    with transaction(sessions) as session:
        job = outbox.claim(session.connection(), first, now, policy)
        assert job is not None
        assert (job.recipient_id, job.attempts, job.timeout_seconds, job.max_attempts) == (AGENCY_CHAOYANG, 1, 7, 4)
        assert job.endpoint_url == "http://127.0.0.1:9/soap"
        stored = session.get(Message, job.message.id)
        assert stored is not None and job.message.sealed_envelope == stored.sealed_envelope
        assert outbox.claim(session.connection(), first, now, policy) is None  # claimed once
    with transaction(sessions) as session:
        assert outbox.failed_attempt(session, first, 1, "HTTP 500", now, policy, 4) == "waiting_for_retry"
        assert outbox.failed_attempt(session, first, 1, "HTTP 500", now, policy, 4) == "superseded"
        outbox.defer(session.connection(), [second], now, now + timedelta(seconds=30), "deferred: test", policy)
    with transaction(sessions) as session:
        rows = {d.id: d for d in session.scalars(select(Delivery).where(Delivery.id.in_([first, second])))}
    assert (rows[first].status, rows[first].attempts, rows[first].last_error) == ("waiting_for_retry", 1, "HTTP 500")
    assert (rows[second].status, rows[second].attempts) == ("waiting_for_retry", 0)
    assert rows[second].next_attempt_at == now + timedelta(seconds=30)


def test_bulk_retry_of_dead_letters(store_app: Flask) -> None:
    sessions = store_app.extensions["gateway"].sessions
    ids = originate(store_app, AGENCY_CHAOYANG, 5)
    now = datetime.now(UTC)
    with transaction(sessions) as session:
        session.execute(update(Delivery).values(status="failed", attempts=4, updated_at=now - timedelta(hours=1)))
        session.execute(update(Delivery).where(Delivery.id == ids[0]).values(updated_at=now - timedelta(days=3)))
        purged = session.get(Delivery, ids[1])
        assert purged is not None
        session.execute(update(Message).where(Message.id == purged.message_pk).values(payload_purged_at=now))
    with transaction(sessions) as session:
        done = outbox.retry_dead_letters(
            session, now, recipient=AGENCY_CHAOYANG, since=now - timedelta(days=1), enqueue_now=True
        )
    assert (done.push_ids, done.pull, done.purged) == (ids[2:], 0, 1)
    with transaction(sessions) as session:
        rows = {d.id: d for d in session.scalars(select(Delivery).where(Delivery.id.in_(ids)))}
    assert [(rows[i].status, rows[i].attempts) for i in ids] == [("failed", 4), ("failed", 4)] + [("queued", 0)] * 3
    assert {rows[i].enqueued_at for i in ids[2:]} == {now}


def test_the_workers_claim_is_one_statement_without_begin_or_commit_on_postgresql(
    store_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL the claim's one statement runs in the driver's autocommit (one round trip, not
    three), and its connection goes back to the pool with transactions as before; on SQLite its
    two statements share a transaction."""
    service = store_app.extensions["gateway"].delivery
    engine = service.engine
    postgres = engine.dialect.name == "postgresql"
    [first, second] = originate(store_app, AGENCY_CHAOYANG, 2)
    seen: list[bool] = []
    claim = outbox.claim

    def noting(connection: Connection, *args: Any) -> outbox.PushJob | None:
        dbapi = connection.connection.dbapi_connection
        assert dbapi is not None
        seen.append(bool(dbapi.autocommit) if postgres else connection.in_transaction())
        return claim(connection, *args)

    monkeypatch.setattr(outbox, "claim", noting)
    job = service._claim(first)
    assert job is not None and (job.delivery_id, job.recipient_id, job.attempts) == (first, AGENCY_CHAOYANG, 1)
    assert service._claim(first) is None  # taken, and kept: it was committed
    assert seen == [True, True]
    with transaction(service.sessions) as session:
        assert session.get(Delivery, first).status == "in_delivery"  # type: ignore[union-attr]
    for _ in range(10):  # every pooled connection in turn: a rolled-back change is rolled back
        with engine.connect() as connection:
            connection.execute(update(Delivery).where(Delivery.id == second).values(last_error="rolled back"))
            connection.rollback()
    with transaction(service.sessions) as session:
        assert session.get(Delivery, second).last_error is None  # type: ignore[union-attr]


def test_outcomes_recorded_together_on_both_stores(store_app: Flask) -> None:
    """The outcome recorder's transaction: on PostgreSQL the deliveries' UPDATEs and the audit
    entries' rows go with the COMMIT (``gateway.store.deferred``), a failed attempt's UPDATE at once
    (its row count says whether the delivery was still this worker's); every status and entry is
    written, and the entries get their indexes from the sequencer."""
    gateway = store_app.extensions["gateway"]
    recorder = gateway.delivery.outcomes
    ids = originate(store_app, AGENCY_CHAOYANG, 4)
    with transaction(gateway.sessions) as session:
        session.execute(update(Delivery).where(Delivery.id.in_(ids)).values(status="in_delivery", attempts=1))
        session.execute(update(Delivery).where(Delivery.id == ids[3]).values(status="queued"))  # taken over
    outcomes = [
        Outcome(ids[0], "m-0", AGENCY_CHAOYANG, 1, 4, None),
        Outcome(ids[1], "m-1", AGENCY_CHAOYANG, 1, 4, "HTTP 500"),
        Outcome(ids[2], "m-2", AGENCY_CHAOYANG, 4, 4, "HTTP 500"),
        Outcome(ids[3], "m-3", AGENCY_CHAOYANG, 1, 4, "HTTP 500"),
    ]
    batches = recorder.batches
    with recorder._lock:  # the four written in one batch, as threads that finish together are
        recorder._pending = [(outcome, Future()) for outcome in outcomes]
        recorder._writing = True
    pending = list(recorder._pending)
    recorder._write_while_pending()
    assert recorder.batches == batches + 1
    assert [future.result(timeout=5) for _, future in pending] == [
        "delivered",
        "waiting_for_retry",
        "failed",
        "superseded",
    ]
    with transaction(gateway.sessions) as session:
        rows = {d.id: d for d in session.scalars(select(Delivery).where(Delivery.id.in_(ids)))}
    assert [rows[i].status for i in ids] == ["delivered", "waiting_for_retry", "failed", "queued"]
    assert rows[ids[0]].delivered_at is not None
    sequence_pending(gateway.sessions, datetime.now(UTC))
    with transaction(gateway.sessions) as session:
        kinds = session.execute(
            select(AuditEntry.kind, AuditEntry.message_id).where(AuditEntry.kind.like("delivery.%"))
        ).all()
    assert sorted(kinds) == sorted(
        [
            ("delivery.delivered", None),
            ("delivery.failed_attempt", None),
            ("delivery.dead_lettered", None),
            ("delivery.failed_attempt", None),
        ]
    )


def test_an_outcome_batch_whose_commit_fails_is_written_one_by_one(
    store_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch that fails (here its COMMIT, with the rows kept for it) is written again outcome by
    outcome: the outcomes that can be written are, the one that cannot gets its error."""
    gateway = store_app.extensions["gateway"]
    recorder = gateway.delivery.outcomes
    ids = originate(store_app, AGENCY_CHAOYANG, 3)
    with transaction(gateway.sessions) as session:
        session.execute(update(Delivery).where(Delivery.id.in_(ids)).values(status="in_delivery", attempts=1))
    real = outcomes_module.record_unwaited if gateway.engine.dialect.name == "postgresql" else outcomes_module.record
    name = real.__name__

    def refusing(session: Any, event: Any) -> Any:
        if event.facts["message_id"] == "m-1":
            # breaks a NOT NULL: at once on SQLite, with the rows kept for the COMMIT on PostgreSQL
            write(session, text("UPDATE deliveries SET status = NULL WHERE id = :id"), {"id": ids[1]})
        return real(session, event)

    monkeypatch.setattr(outcomes_module, name, refusing)
    outcomes = [Outcome(i, f"m-{n}", AGENCY_CHAOYANG, 1, 4, None) for n, i in enumerate(ids)]
    with recorder._lock:
        recorder._pending = [(outcome, Future()) for outcome in outcomes]
        recorder._writing = True
    pending = list(recorder._pending)
    recorder._write_while_pending()
    results = [future.exception(timeout=5) or future.result() for _, future in pending]
    assert results[0] == "delivered" and results[2] == "delivered"
    assert isinstance(results[1], DBAPIError)
    with transaction(gateway.sessions) as session:
        statuses = dict(session.execute(select(Delivery.id, Delivery.status).where(Delivery.id.in_(ids))).all())
    assert statuses == {ids[0]: "delivered", ids[1]: "in_delivery", ids[2]: "delivered"}
