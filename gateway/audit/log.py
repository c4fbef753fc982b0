"""The one place that writes the audit log.

``record`` queues an entry in the caller's session; the entries get their leaf indexes together,
as the transaction's last work before it commits (``sequence``, run by a ``before_commit``
listener, or earlier by a caller that must name a position, such as the intake's receipt). The
counter row that hands out indexes is therefore locked only from then to the commit, not through
the whole transaction: with every intake transaction taking it at its first audit entry, it was
held nearly all the time and every message in every process waited on it.

Indexes stay contiguous: a transaction takes ``n`` at once from the counter row updated in that
same transaction, so a rolled-back transaction rolls its increment back too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, bindparam, event, insert, select, update
from sqlalchemy.orm import Session

from gateway.audit.entries import AuditEvent
from gateway.audit.merkle import leaf_hash
from gateway.audit.models import AuditEntry, AuditLogState

STATE_ID = 1
PENDING_KEY = "gateway.audit.pending"  # in Session.info: the entries recorded and not yet sequenced
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


def record(session: Session, event: AuditEvent) -> RecordedEntry:
    """Append ``event`` to the log in ``session``'s transaction (its index is given at commit).

    The entry is indexed under ``event.message_id`` only when that is a well-formed id (a refused
    message may claim anything); the facts keep whatever the event says.
    """
    encoded = event.encode()
    entry = RecordedEntry(event, encoded, leaf_hash(encoded))
    session.info.setdefault(PENDING_KEY, []).append(entry)
    return entry


def sequence(session: Session) -> None:
    """Give the entries recorded in ``session`` so far their leaf indexes and write them.

    Locks the counter row until the transaction ends: call it as late as the caller can.
    """
    pending: list[RecordedEntry] | None = session.info.pop(PENDING_KEY, None)
    if not pending:
        return
    size = session.execute(_ADVANCE, {"count": len(pending)}).scalar_one_or_none()
    if size is None:
        raise RuntimeError("the audit log's state row is missing: run `gateway init` (migration 0005 creates it)")
    first = size - len(pending)
    rows: list[dict[str, Any]] = []
    for offset, entry in enumerate(pending):
        entry.position = LogPosition(first + offset, entry.leaf_hash)
        message_id = entry.event.message_id
        rows.append(
            {
                "leaf_index": first + offset,
                "at": entry.event.at,
                "kind": entry.event.kind,
                "message_id": message_id if message_id and len(message_id) == MESSAGE_ID_LENGTH else None,
                "entry": entry.encoded,
                "leaf_hash": entry.leaf_hash,
            }
        )
    session.execute(_INSERT_ENTRY, rows)


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
