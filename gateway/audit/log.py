"""The one place that writes the audit log.

``record`` queues an entry in the caller's session; the entries get their leaf indexes together,
as the transaction's last work before it commits (``sequence``, run by a ``before_commit``
listener, or earlier by a caller that must name a position, such as the intake's receipt). The
counter row that hands out indexes is therefore locked only from then to the commit, not through
the whole transaction: with every intake transaction taking it at its first audit entry, it was
held nearly all the time and every message in every process waited on it.

Indexes stay contiguous: a transaction takes ``n`` at once from the counter row updated in that
same transaction, so a rolled-back transaction rolls its increment back too.

The intake on PostgreSQL sends that statement with the COMMIT, in one round trip
(``index_at_commit``, ``gateway.store.deferred.with_commit``): the row is then locked on the server
from the statement to the COMMIT only, and the entries' positions are known when the commit
returns, so the receipts that name them are signed after it (``gateway.intake.pipeline``).

The intake on PostgreSQL goes further (``defer_indexes``; so do the delivery outcomes, which nobody
waits for): its transaction writes its entries to
``audit_pending`` and takes no counter at all; after the commit, one sequencer at a time
(``sequence_pending``: an advisory lock) gives every waiting entry its index in one batch, in one
transaction, as Trillian, Tessera and Sunlight do, and the receipt, signed after that, names it
(``PositionWaiter``). Every message in every process otherwise waited on the one counter row
through its neighbours' commits.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, event, insert, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from gateway.audit.entries import AuditEvent
from gateway.audit.merkle import leaf_hash
from gateway.audit.models import AuditEntry, AuditLogState, AuditPending
from gateway.store.deferred import with_commit, write

STATE_ID = 1
PENDING_KEY = "gateway.audit.pending"  # in Session.info: the entries recorded and not yet sequenced
DEFER_KEY = "gateway.audit.defer"  # in Session.info: write them to audit_pending, indexed in batches
AT_COMMIT_KEY = "gateway.audit.at_commit"  # in Session.info: index them in the COMMIT's round trip
# Two Core statements built once, not the ORM's unit of work: an entry is never read back in the
# transaction that writes it, and building the statements and the ORM's bookkeeping cost several
# times what the two statements themselves do (bench/audit measured it).
_STATE = cast(Table, AuditLogState.__table__)
_ADVANCE = (
    update(_STATE)
    .where(_STATE.c.id == STATE_ID)
    .values(size=_STATE.c.size + bindparam("count"))
    .returning(_STATE.c.size)
)
_INSERT_ENTRY = insert(cast(Table, AuditEntry.__table__))
_PENDING = cast(Table, AuditPending.__table__)
_INSERT_PENDING = insert(_PENDING).returning(_PENDING.c.id, sort_by_parameter_order=True)
_INSERT_UNWAITED = insert(_PENDING)  # ``record_unwaited``: nothing reads its id
_WAITING = select(
    _PENDING.c.id, _PENDING.c.entry, _PENDING.c.leaf_hash, _PENDING.c.at, _PENDING.c.kind, _PENDING.c.message_id
).where(_PENDING.c.leaf_index.is_(None))
_MARK_SEQUENCED = (
    update(_PENDING)
    .where(_PENDING.c.id == bindparam("pending_id"))
    .values(leaf_index=bindparam("index"), sequenced_at=bindparam("now"))
)
# "gradp": the advisory lock of the one pending-entry sequencer, paired with the schema's name (the lock
# space is the whole database; each schema holds a log of its own).
_PENDING_LOCK = 0x67726170
KEEP_SEQUENCED = timedelta(minutes=10)  # sequenced pending rows stay this long for late readers
MESSAGE_ID_LENGTH = 36  # message ids are UUIDs; the index column holds nothing else


@dataclass(frozen=True)
class LogPosition:
    leaf_index: int
    leaf_hash: bytes


@dataclass
class RecordedEntry:
    """An entry recorded in a transaction; ``position`` is known once the transaction sequenced it."""

    event: AuditEvent
    encoded: bytes
    leaf_hash: bytes
    position: LogPosition | None = field(default=None)
    pending_id: int | None = field(default=None)  # deferred: its row in audit_pending


def record(session: Session, event: AuditEvent) -> RecordedEntry:
    """Append ``event`` to the log in ``session``'s transaction (its index is given at commit).

    The entry is indexed under ``event.message_id`` only when that is a well-formed id (a refused
    message may claim anything); the facts keep whatever the event says.
    """
    encoded = event.encode()
    entry = RecordedEntry(event, encoded, leaf_hash(encoded))
    session.info.setdefault(PENDING_KEY, []).append(entry)
    return entry


def record_unwaited(session: Session, event: AuditEvent) -> None:
    """Append ``event`` to the log through ``audit_pending``, for an entry whose index nobody waits
    for (a push delivery's outcome): its row goes with the rows ``session`` keeps for its commit
    (``gateway.store.deferred.write``: on PostgreSQL in the COMMIT's round trip, no RETURNING), and
    the sequencer's next batch gives it its index (``sequence_pending``). Only where that sequencer
    runs: on PostgreSQL, beside ``defer_indexes``."""
    encoded = event.encode()
    write(session, _INSERT_UNWAITED, _row(RecordedEntry(event, encoded, leaf_hash(encoded))))


def sequence(session: Session) -> None:
    """Give the entries recorded in ``session`` so far their leaf indexes and write them.

    Locks the counter row until the transaction ends: call it as late as the caller can.
    """
    pending: list[RecordedEntry] | None = session.info.pop(PENDING_KEY, None)
    if not pending:
        return
    if session.info.get(DEFER_KEY):
        ids = session.execute(_INSERT_PENDING, [_row(entry) for entry in pending]).scalars().all()
        for entry, pending_id in zip(pending, ids, strict=True):
            entry.pending_id = pending_id
        return
    if session.get_bind().dialect.name == "postgresql":
        if session.info.get(AT_COMMIT_KEY) and with_commit(
            session, _TAKE_AND_WRITE, _take_parameters(pending), lambda rows: _place(pending, rows)
        ):
            return  # positions given once the COMMIT has succeeded
        first = _take_indexes_and_write(session, pending)
    else:
        first = _take_indexes(session, len(pending))
        session.execute(_INSERT_ENTRY, [{"leaf_index": first + n, **_row(entry)} for n, entry in enumerate(pending)])
    for offset, entry in enumerate(pending):
        entry.position = LogPosition(first + offset, entry.leaf_hash)


# On PostgreSQL the counter's increment and the entries' rows go in one statement: every other
# process's batch waits on the counter row from this statement to the commit, and one round trip
# less in that stretch is a round trip less of everybody's wait (bench/intake/README.md, ninth
# pass). The entries travel as arrays, unnested in their order; SQLAlchemy's Core has no
# construct for an UPDATE feeding an INSERT ... SELECT in one statement, hence the text. Without
# the counter row (migration 0005 creates it) the first index is NULL, and the statement fails on
# the leaf index's NOT NULL ("null value in column leaf_index"): sent with the COMMIT
# (``index_at_commit``), it must fail there, for its rows are read only after the COMMIT.
_TAKE_AND_WRITE = text(
    "WITH taken AS ("
    " UPDATE audit_log_state SET size = size + :count WHERE id = :state RETURNING size - :count AS first"
    ") INSERT INTO audit_entries (leaf_index, at, kind, message_id, entry, leaf_hash)"
    " SELECT (SELECT first FROM taken) + given.place - 1, given.at, given.kind, given.message_id, given.entry,"
    " given.leaf_hash"
    " FROM unnest(CAST(:at AS timestamptz[]), CAST(:kind AS varchar[]), CAST(:message_id AS varchar[]),"
    " CAST(:entry AS bytea[]), CAST(:leaf_hash AS bytea[]))"
    " WITH ORDINALITY AS given(at, kind, message_id, entry, leaf_hash, place)"
    " RETURNING leaf_index"
)


def _take_parameters(entries: Sequence[RecordedEntry]) -> dict[str, Any]:
    """``_TAKE_AND_WRITE``'s parameters for ``entries``."""
    rows = [_row(entry) for entry in entries]
    columns = {name: [row[name] for row in rows] for name in ("at", "kind", "message_id", "entry", "leaf_hash")}
    return {"count": len(entries), "state": STATE_ID, **columns}


def _take_indexes_and_write(session: Session, entries: Sequence[RecordedEntry]) -> int:
    """PostgreSQL: take ``len(entries)`` leaf indexes and write the entries with them, in one
    statement; the first index (the counter row is locked until the commit)."""
    written = session.execute(_TAKE_AND_WRITE, _take_parameters(entries)).scalars().all()
    return int(min(written))  # one row an entry (without the counter row the statement fails)


def _place(entries: Sequence[RecordedEntry], rows: Sequence[tuple[Any, ...]]) -> None:
    """The positions of ``entries``, written by ``_TAKE_AND_WRITE`` in the commit's round trip (its rows)."""
    first = min(int(row[0]) for row in rows)
    for offset, entry in enumerate(entries):
        entry.position = LogPosition(first + offset, entry.leaf_hash)


def _take_indexes(session: Session, count: int) -> int:
    """The first of ``count`` new leaf indexes, taken from the counter row (locked until the commit)."""
    size = session.execute(_ADVANCE, {"count": count}).scalar_one_or_none()
    if size is None:
        raise RuntimeError("the audit log's state row is missing: run `gateway init` (migration 0005 creates it)")
    return int(size) - count


def _row(entry: RecordedEntry) -> dict[str, Any]:
    message_id = entry.event.message_id
    return {
        "at": entry.event.at,
        "kind": entry.event.kind,
        "message_id": message_id if message_id and len(message_id) == MESSAGE_ID_LENGTH else None,
        "entry": entry.encoded,
        "leaf_hash": entry.leaf_hash,
    }


def index_at_commit(session: Session) -> None:
    """Let ``session``'s entries take their indexes in its commit's round trip (PostgreSQL with
    psycopg's pipeline mode, committed by ``gateway.store.deferred.commit``; elsewhere as usual).

    The counter row is then locked on the server from that statement to the COMMIT only, with no
    round trip to the client in between; the entries' positions are known once the commit returns,
    so whatever names them (the intake's receipts) is written after it.
    """
    session.info[AT_COMMIT_KEY] = True


def defer_indexes(session: Session) -> None:
    """Let ``session``'s entries wait in ``audit_pending`` for ``sequence_pending`` (the intake on PostgreSQL)."""
    session.info[DEFER_KEY] = True


def sequence_pending(
    sessions: sessionmaker[Session], now: datetime, *, wait_for_lock: bool = True, limit: int = 5000
) -> dict[int, int]:
    """Give the waiting entries of ``audit_pending`` their leaf indexes, in one transaction.

    Returns the indexes given, by ``audit_pending`` id (empty when none waited, or when the lock
    was taken and ``wait_for_lock`` is false).

    One sequencer at a time: on PostgreSQL an advisory lock (``wait_for_lock=False``: return nothing at
    once when another holds it), on SQLite the process's transaction lock and SQLite's one writer.
    Entries get indexes in the order they were written.
    """
    with sessions() as session, session.begin():
        if session.get_bind().dialect.name == "postgresql":
            lock = "pg_advisory_xact_lock" if wait_for_lock else "pg_try_advisory_xact_lock"
            taken = session.execute(
                text(f"SELECT {lock}(:key, hashtext(current_schema()))::text"), {"key": _PENDING_LOCK}
            ).scalar()
            if taken == "false":
                return {}
        waiting = session.execute(_WAITING.order_by(_PENDING.c.id).limit(limit)).all()
        if not waiting:
            return {}
        first = _take_indexes(session, len(waiting))
        # The pending rows' columns are the entry's, and their message ids were checked when recorded.
        session.execute(
            _INSERT_ENTRY,
            [
                {**{k: v for k, v in row._mapping.items() if k != "id"}, "leaf_index": first + offset}
                for offset, row in enumerate(waiting)
            ],
        )
        session.execute(
            _MARK_SEQUENCED,
            [{"pending_id": row.id, "index": first + offset, "now": now} for offset, row in enumerate(waiting)],
        )
        return {row.id: first + offset for offset, row in enumerate(waiting)}


def forget_sequenced(sessions: sessionmaker[Session], now: datetime) -> int:
    """Delete the ``audit_pending`` rows sequenced more than ``KEEP_SEQUENCED`` ago (their entries are
    in ``audit_entries``; no waiter reads them any more); how many. The periodic sequencer runs it."""
    with sessions() as session, session.begin():
        deleted = session.execute(
            delete(_PENDING).where(_PENDING.c.sequenced_at < now - KEEP_SEQUENCED).returning(_PENDING.c.id)
        )
        return len(deleted.all())


class PositionWaiter:
    """Gives deferred entries their positions after their commit: one sequencer per process at a time.

    The threads of a process that wait for positions queue on one lock instead of polling the
    database: the first runs ``sequence_pending`` (which indexes every entry committed so far, its
    neighbours' too, in one batch) and leaves the indexes it gave for the others, who then find
    theirs without a statement. Across processes the advisory lock of ``sequence_pending`` takes
    turns.
    """

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._lock = threading.Lock()
        self._given: dict[int, int] = {}  # indexes given by this process's sequencing, not yet collected

    def wait(self, entries: Sequence[RecordedEntry], now: datetime, timeout: float = 10.0) -> None:
        """Fill in the ``position`` of each deferred entry (committed before the call).

        Raises ``TimeoutError`` when the sequencing lock is not had within ``timeout`` seconds.
        """
        waiting = {e.pending_id: e for e in entries if e.position is None and e.pending_id is not None}
        if not waiting:
            return
        if not self._lock.acquire(timeout=timeout):
            raise TimeoutError(f"{len(waiting)} audit entries were not given a leaf index within {timeout} s")
        try:
            for pending_id in list(waiting):
                if pending_id in self._given:
                    entry = waiting.pop(pending_id)
                    entry.position = LogPosition(self._given.pop(pending_id), entry.leaf_hash)
            if waiting:
                # Committed before this call: indexed by this batch, or by an earlier one of any process.
                given = sequence_pending(self._sessions, now)
                self._given.update(given)
                for pending_id in list(waiting):
                    if pending_id in self._given:
                        entry = waiting.pop(pending_id)
                        entry.position = LogPosition(self._given.pop(pending_id), entry.leaf_hash)
            if waiting:
                with self._sessions() as session:
                    rows = session.execute(
                        select(_PENDING.c.id, _PENDING.c.leaf_index).where(_PENDING.c.id.in_(list(waiting)))
                    ).all()
                for pending_id, leaf_index in rows:
                    if leaf_index is not None:
                        entry = waiting.pop(pending_id)
                        entry.position = LogPosition(leaf_index, entry.leaf_hash)
            if waiting:
                raise RuntimeError(f"audit_pending rows {sorted(waiting)} were committed but not sequenced")
            if len(self._given) > 100_000:  # indexes nobody in this process waits for (another's waiters)
                self._given.clear()
        finally:
            self._lock.release()


@event.listens_for(Session, "before_commit")
def _sequence_before_commit(session: Session) -> None:
    if not session.in_nested_transaction():  # a savepoint's release is not the commit
        sequence(session)


@event.listens_for(Session, "after_rollback")
def _forget_on_rollback(session: Session) -> None:
    session.info.pop(PENDING_KEY, None)


def size(session: Session) -> tuple[int, int]:
    """(entries, integrated into the tree)."""
    state = session.scalar(select(AuditLogState).where(AuditLogState.id == STATE_ID))
    return (state.size, state.integrated) if state else (0, 0)
