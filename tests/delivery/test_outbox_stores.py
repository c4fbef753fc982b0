"""The outbox's prebuilt statements on SQLite and on PostgreSQL: the claim with what a push needs,
the outcome, a deferral, and the bulk retry of dead letters."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Connection, select, update

from gateway.bootstrap import ensure_platform, gateway_key_paths
from gateway.delivery import outbox
from gateway.delivery.policy import RetryPolicy
from gateway.messages.models import Delivery, Message
from gateway.settings import Settings
from gateway.store.db import transaction
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
