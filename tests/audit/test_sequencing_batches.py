"""Entries deferred to audit_pending: indexed in a batch, then forgotten once their waiters are gone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from gateway.audit.entries import AuditEvent
from gateway.audit.log import KEEP_SEQUENCED, defer_indexes, forget_sequenced, record, sequence_pending
from gateway.audit.models import AuditEntry, AuditPending
from gateway.settings import Settings
from gateway.store.db import connect, session_factory, transaction


def test_deferred_entries_are_indexed_in_one_batch_and_forgotten_later(settings: Settings) -> None:
    engine = connect(settings.database_url)
    sessions = session_factory(engine)
    now = datetime.now(UTC)
    recorded = []
    for number in range(3):
        with transaction(sessions) as session:
            defer_indexes(session)
            recorded.append(record(session, AuditEvent("test.event", now, {"number": number})))
    assert all(entry.position is None and entry.pending_id is not None for entry in recorded)
    with transaction(sessions) as session:
        before = session.scalar(select(func.count()).select_from(AuditEntry))
    given = sequence_pending(sessions, now)
    assert sorted(given) == sorted(entry.pending_id for entry in recorded)
    assert sorted(given.values()) == list(range(before, before + 3))  # contiguous, after what was there
    assert forget_sequenced(sessions, now) == 0  # waiters may still read their indexes
    assert forget_sequenced(sessions, now + KEEP_SEQUENCED + timedelta(seconds=1)) == 3
    with transaction(sessions) as session:
        assert session.scalar(select(func.count()).select_from(AuditPending)) == 0
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == before + 3  # the log keeps them
    engine.dispose()
