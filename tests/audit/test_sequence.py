"""Entries indexed at their transaction's commit: contiguous, in the order recorded, and on
PostgreSQL the counter's increment and the entries' rows in one statement."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import event, select

from gateway.audit.entries import AuditEvent
from gateway.audit.log import record, sequence
from gateway.audit.merkle import leaf_hash
from gateway.audit.models import AuditEntry, AuditLogState
from gateway.settings import Settings
from gateway.store.db import connect, session_factory, transaction

MESSAGE_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"


def test_a_transactions_entries_take_the_next_indexes_in_their_order(store_settings: Settings) -> None:
    engine = connect(store_settings.database_url)
    sessions = session_factory(engine)
    now = datetime.now(UTC)
    with transaction(sessions) as session:
        before = session.execute(select(AuditLogState.size)).scalar_one()
    statements: list[str] = []

    def note(_connection: object, _cursor: object, sql: str, *_: object) -> None:
        statements.append(sql)

    event.listen(engine, "before_cursor_execute", note)
    try:
        recorded = []
        for numbers in ([0, 1, 2], [3, 4]):
            with transaction(sessions) as session:
                for number in numbers:
                    message_id = MESSAGE_ID if number == 1 else None
                    recorded.append(record(session, AuditEvent("test.event", now, {"number": number}, message_id)))
                sequence(session)  # as the intake's receipt does, before the commit
    finally:
        event.remove(engine, "before_cursor_execute", note)
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
