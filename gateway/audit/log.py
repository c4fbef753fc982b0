"""The one place that writes the audit log.

``record`` appends an entry in the caller's transaction and gives it the next leaf index at once,
from a counter row updated in that same transaction: indexes stay contiguous (a rolled-back
transaction rolls its increment back too), and a receipt can name its entry's position before the
sequencer has folded it into the tree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.orm import Session

from gateway.audit.entries import AuditEvent
from gateway.audit.merkle import leaf_hash
from gateway.audit.models import AuditEntry, AuditLogState

STATE_ID = 1
# Two Core statements built once, not the ORM's unit of work: an entry is never read back in the
# transaction that writes it, and building the statements and the ORM's bookkeeping cost several
# times what the two statements themselves do (bench/audit measured it).
_STATE = cast(Table, AuditLogState.__table__)
_NEXT_INDEX = update(_STATE).where(_STATE.c.id == STATE_ID).values(size=_STATE.c.size + 1).returning(_STATE.c.size)
_INSERT_ENTRY = insert(cast(Table, AuditEntry.__table__))
MESSAGE_ID_LENGTH = 36  # message ids are UUIDs; the index column holds nothing else


@dataclass(frozen=True)
class LogPosition:
    leaf_index: int
    leaf_hash: bytes


def record(session: Session, event: AuditEvent) -> LogPosition:
    """Append ``event`` to the log in ``session``'s transaction; returns its position.

    The entry is indexed under ``event.message_id`` only when that is a well-formed id (a refused
    message may claim anything); the facts keep whatever the event says.
    """
    encoded = event.encode()
    size = session.execute(_NEXT_INDEX).scalar_one_or_none()
    if size is None:
        raise RuntimeError("the audit log's state row is missing: run `gateway init` (migration 0005 creates it)")
    position = LogPosition(size - 1, leaf_hash(encoded))
    session.execute(
        _INSERT_ENTRY,
        {
            "leaf_index": position.leaf_index,
            "at": event.at,
            "kind": event.kind,
            "message_id": event.message_id if event.message_id and len(event.message_id) == MESSAGE_ID_LENGTH else None,
            "entry": encoded,
            "leaf_hash": position.leaf_hash,
        },
    )
    return position


def size(session: Session) -> tuple[int, int]:
    """(entries, integrated into the tree)."""
    state = session.scalar(select(AuditLogState).where(AuditLogState.id == STATE_ID))
    return (state.size, state.integrated) if state else (0, 0)
