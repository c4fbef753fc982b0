"""Entries deferred to audit_pending: indexed in a batch, then forgotten once their waiters are gone."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import event, func, select, text

from gateway.audit.entries import AuditEvent
from gateway.audit.log import (
    KEEP_SEQUENCED,
    LogPosition,
    defer_indexes,
    forget_sequenced,
    record,
    sequence,
    sequence_pending,
)
from gateway.audit.models import AuditEntry, AuditPending
from gateway.notices.models import Notice
from gateway.notices.record import notify
from gateway.settings import Settings
from gateway.store.db import connect, migrate, session_factory, transaction
from gateway.store.deferred import defer_writes


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


def test_on_postgresql_the_rows_kept_for_the_commit_go_in_the_statement_that_takes_the_indexes(
    postgres_url: str,
) -> None:
    """The group commit's kept rows (here a graduate's notice) and the batch's entries: one statement."""
    engine = connect(postgres_url)
    migrate(engine)
    now = datetime.now(UTC)
    run: list[str] = []

    def note(_connection: object, _cursor: object, statement: str, *_: object) -> None:
        run.append(statement)

    try:
        with transaction(session_factory(engine)) as session:
            defer_writes(session)
            notify(session, "registration_filed", now, identity_hash="a" * 64, facts={"n": 1})
            notify(session, "archive_requested", now, identity_hash="b" * 64, facts={"n": 2})
            entries = [record(session, AuditEvent("test.event", now, {"number": n})) for n in range(3)]
            event.listen(engine, "before_cursor_execute", note)
            sequence(session)
            event.remove(engine, "before_cursor_execute", note)
        assert len(run) == 1 and "INSERT INTO graduate_notices" in run[0] and "audit_log_state" in run[0]
        first = entries[0].position.leaf_index if entries[0].position else -1
        assert [entry.position for entry in entries] == [
            LogPosition(first + n, entry.leaf_hash) for n, entry in enumerate(entries)
        ]
        with transaction(session_factory(engine)) as session:
            notices = session.execute(select(Notice.kind, Notice.facts).order_by(Notice.id)).all()
            stored = session.scalars(
                select(AuditEntry.leaf_index).where(AuditEntry.kind == "test.event").order_by(AuditEntry.leaf_index)
            ).all()
        assert [tuple(row) for row in notices] == [
            ("registration_filed", '{"n": 1}'),
            ("archive_requested", '{"n": 2}'),
        ]
        assert stored == [first, first + 1, first + 2]
    finally:
        engine.dispose()


def test_on_postgresql_the_kept_rows_are_written_before_the_counter_row_is_locked(postgres_url: str) -> None:
    """While another transaction holds the counter row, the statement waiting for it has already
    written the kept rows (their ids, from a sequence, are taken outside any transaction): the row
    is not held while they are written."""
    engine = connect(postgres_url)
    migrate(engine)
    now = datetime.now(UTC)
    last_id = text("SELECT last_value + CAST(is_called AS integer) FROM graduate_notices_id_seq")
    try:
        with engine.connect() as holder, engine.connect() as watcher:
            before = watcher.execute(last_id).scalar_one()
            holder.execute(text("SELECT size FROM audit_log_state WHERE id = 1 FOR UPDATE"))
            failed: list[BaseException] = []

            def batch() -> None:
                try:
                    with transaction(session_factory(engine)) as session:
                        defer_writes(session)
                        for kind in ("registration_filed", "archive_requested"):
                            notify(session, kind, now, identity_hash="c" * 64)
                        record(session, AuditEvent("test.event", now, {}))
                        sequence(session)
                except BaseException as exc:
                    failed.append(exc)

            waiting = threading.Thread(target=batch)
            waiting.start()
            deadline = time.monotonic() + 20
            while not watcher.execute(
                text("SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'")
            ).scalar_one():
                assert time.monotonic() < deadline, "the batch never waited for the counter row"
                time.sleep(0.05)
            written_while_waiting = watcher.execute(last_id).scalar_one() - before
            holder.rollback()
            waiting.join(20)
        assert not failed
        assert written_while_waiting == 2
    finally:
        engine.dispose()
