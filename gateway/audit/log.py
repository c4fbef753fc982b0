"""The one place that writes the audit log.

``record`` appends an entry in the caller's transaction and gives it the next leaf index at once,
from a counter row updated in that same transaction: indexes stay contiguous (a rolled-back
transaction rolls its increment back too), and a receipt can name its entry's position before the
sequencer has folded it into the tree.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.audit.entries import AuditEvent
from gateway.audit.merkle import leaf_hash
from gateway.audit.models import AuditEntry, AuditLogState

STATE_ID = 1


@dataclass(frozen=True)
class LogPosition:
    leaf_index: int
    leaf_hash: bytes


def record(session: Session, event: AuditEvent) -> LogPosition:
    """Append ``event`` to the log in ``session``'s transaction; returns its position."""
    encoded = event.encode()
    size = session.execute(
        update(AuditLogState)
        .where(AuditLogState.id == STATE_ID)
        .values(size=AuditLogState.size + 1)
        .returning(AuditLogState.size)
    ).scalar_one_or_none()
    if size is None:
        raise RuntimeError("the audit log's state row is missing: run `gateway init` (migration 0005 creates it)")
    position = LogPosition(size - 1, leaf_hash(encoded))
    session.add(
        AuditEntry(
            leaf_index=position.leaf_index,
            at=event.at,
            kind=event.kind,
            message_id=event.message_id,
            entry=encoded,
            leaf_hash=position.leaf_hash,
        )
    )
    return position


def size(session: Session) -> tuple[int, int]:
    """(entries, integrated into the tree)."""
    state = session.scalar(select(AuditLogState).where(AuditLogState.id == STATE_ID))
    return (state.size, state.integrated) if state else (0, 0)
