"""Entries indexed at their transaction's commit: contiguous, in the order recorded, and on
PostgreSQL the counter's increment and the entries' rows in one statement; with ``index_at_commit``,
that statement in the COMMIT's round trip."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.audit.entries import AuditEvent
from gateway.audit.log import index_at_commit, record, sequence
from gateway.audit.merkle import leaf_hash
from gateway.audit.models import AuditEntry, AuditLogState
from gateway.settings import Settings
from gateway.store.db import connect, session_factory, transaction
from gateway.store.deferred import commit, defer_writes

MESSAGE_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"


class _Statements(list[str]):
    """The SQL of every statement run through the engine, as a ``before_cursor_execute`` listener."""

    def __call__(self, _connection: object, _cursor: object, sql: str, *_: object) -> None:
        self.append(sql)


def _noted(store_settings: Settings) -> tuple[Engine, sessionmaker[Session], int, _Statements]:
    """An engine on the store, its sessions, the log's size now and the statements run from now on."""
    engine = connect(store_settings.database_url)
    sessions = session_factory(engine)
    with transaction(sessions) as session:
        before = session.execute(select(AuditLogState.size)).scalar_one()
    statements = _Statements()
    event.listen(engine, "before_cursor_execute", statements)
    return engine, sessions, before, statements


def test_a_transactions_entries_take_the_next_indexes_in_their_order(store_settings: Settings) -> None:
    engine, sessions, before, statements = _noted(store_settings)
    now = datetime.now(UTC)
    try:
        recorded = []
        for numbers in ([0, 1, 2], [3, 4]):
            with transaction(sessions) as session:
                for number in numbers:
                    message_id = MESSAGE_ID if number == 1 else None
                    recorded.append(record(session, AuditEvent("test.event", now, {"number": number}, message_id)))
                sequence(session)  # as the intake's receipt does, before the commit
    finally:
        event.remove(engine, "before_cursor_execute", statements)
    assert [entry.position.leaf_index for entry in recorded if entry.position] == list(range(before, before + 5))
    try:
        with transaction(sessions) as session:
            newest = select(AuditEntry).where(AuditEntry.leaf_index >= before).order_by(AuditEntry.leaf_index)
            stored = session.scalars(newest)
            rows = [(row.leaf_index, row.entry, row.leaf_hash, row.message_id, row.kind, row.at) for row in stored]
            assert session.execute(select(AuditLogState.size)).scalar_one() == before + 5
    finally:
        engine.dispose()
    assert rows == [
        (before + offset, entry.encoded, leaf_hash(entry.encoded), entry.event.message_id, "test.event", now)
        for offset, entry in enumerate(recorded)
    ]
    touching = [sql for sql in statements if "audit_log_state" in sql or "audit_entries" in sql]
    if engine.dialect.name == "postgresql":
        assert len(touching) == 2  # one statement a transaction: the counter's increment feeds the INSERT
        assert all("UPDATE audit_log_state" in sql and "INSERT INTO audit_entries" in sql for sql in touching)
    else:
        assert len(touching) == 4


def test_entries_indexed_at_the_commit_get_their_positions_once_it_has_succeeded(store_settings: Settings) -> None:
    """On PostgreSQL the statement that takes the indexes goes with the COMMIT (``commit``), on the
    driver's cursor, so the counter row is held for no round trip to the gateway; the positions are
    there when it returns. On SQLite the entries are indexed at the commit as usual."""
    engine, sessions, before, statements = _noted(store_settings)
    now = datetime.now(UTC)
    try:
        with sessions() as session:
            session.begin()
            defer_writes(session)
            index_at_commit(session)
            recorded = [record(session, AuditEvent("test.event", now, {"number": n})) for n in range(3)]
            commit(session)
        assert [entry.position.leaf_index for entry in recorded if entry.position] == list(range(before, before + 3))
        with transaction(sessions) as session:
            rows = session.execute(
                select(AuditEntry.leaf_index, AuditEntry.leaf_hash).where(AuditEntry.leaf_index >= before)
            ).all()
            assert sorted(rows) == [(before + n, entry.leaf_hash) for n, entry in enumerate(recorded)]
            assert session.execute(select(AuditLogState.size)).scalar_one() == before + 3
    finally:
        engine.dispose()
    through_sqlalchemy = [sql for sql in statements if "UPDATE audit_log_state" in sql]
    if engine.dialect.name == "postgresql":
        assert through_sqlalchemy == []  # on the driver's cursor, in the COMMIT's pipeline
    else:
        assert len(through_sqlalchemy) == 1


@pytest.mark.parametrize("at_commit", [True, False], ids=["with the COMMIT", "before it"])
def test_without_the_counter_row_entries_indexed_at_the_commit_fail_it_and_nothing_is_stored(
    postgres_url: str, at_commit: bool
) -> None:
    """With the COMMIT, the statement's rows are read after it: without the counter row (an
    insider deleted it) the statement itself must fail, so that the COMMIT is not run. Run before
    the commit (``sequence``), it fails the same way."""
    from sqlalchemy import delete, inspect, text
    from sqlalchemy.exc import IntegrityError

    from gateway.store.db import migrate

    engine = connect(postgres_url)
    migrate(engine)
    sessions = session_factory(engine)
    try:
        with transaction(sessions) as session:
            session.execute(delete(AuditLogState))
        with sessions() as session:
            session.begin()
            session.execute(text("CREATE TABLE written_beside (n integer)"))  # the transaction's other work
            defer_writes(session)
            if at_commit:
                index_at_commit(session)
            entry = record(session, AuditEvent("test.event", datetime.now(UTC), {"number": 1}))
            with pytest.raises(IntegrityError, match="leaf_index"):
                commit(session) if at_commit else sequence(session)
        assert entry.position is None
        assert not inspect(engine).has_table("written_beside")  # nothing of the transaction committed
        with transaction(sessions) as session:
            assert session.execute(select(AuditEntry.leaf_index)).all() == []
    finally:
        engine.dispose()
