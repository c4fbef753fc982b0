"""The pull mailbox's state changes, each one atomic in the database (the pull side of ``outbox``).

A pull delivery waits ``queued`` in its recipient's mailbox. A fetch takes it into ``in_delivery``
by one conditional UPDATE per row, as ``outbox.claim`` does for push, so that two concurrent
fetches cannot both hand out the same message: the one whose UPDATE changed the row has it, the
other skips it. On PostgreSQL the candidates are also read ``FOR UPDATE SKIP LOCKED``, so that a
concurrent fetch fills its batch with other messages instead of waiting for, then losing, these.
A fetched message that is not acknowledged within the visibility timeout is offered again.
An acknowledgement takes a fetched delivery to ``delivered``, once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session, selectinload

from gateway.audit.entries import AuditEvent
from gateway.audit.log import record
from gateway.delivery.policy import RetryPolicy
from gateway.messages.models import Delivery, DeliveryStatus, Message
from gateway.registry.models import DeliveryMode

log = logging.getLogger(__name__)
S = DeliveryStatus


class Acknowledgement(StrEnum):
    """What became of one acknowledged message (reported per message, never a fault)."""

    ACKNOWLEDGED = "acknowledged"
    ALREADY_ACKNOWLEDGED = "already_acknowledged"
    UNKNOWN = "unknown"  # not in this mailbox, or never fetched


@dataclass(frozen=True)
class MessageRef:
    """A message by its original sender and message id (message ids are unique per sender only)."""

    message_id: str
    sender: str


def _offered(now: datetime, policy: RetryPolicy) -> ColumnElement[bool]:
    """Waiting in the mailbox, or fetched so long ago that its visibility timeout has passed."""
    invisible_since = now - timedelta(seconds=policy.visibility_seconds)
    return or_(
        Delivery.status == S.QUEUED,
        and_(Delivery.status == S.IN_DELIVERY, Delivery.claimed_at < invisible_since),
    )


def fetch(session: Session, recipient_id: str, limit: int, now: datetime, policy: RetryPolicy) -> list[Delivery]:
    """Claim up to ``limit`` of the recipient's pull deliveries, oldest first; returns them claimed.

    Each returned delivery is ``in_delivery`` with ``claimed_at=now`` and one more attempt.
    """
    offered = _offered(now, policy)
    candidates = session.scalars(
        select(Delivery.id)
        .where(Delivery.recipient_id == recipient_id, Delivery.mode == DeliveryMode.PULL, offered)
        .order_by(Delivery.created_at, Delivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True)  # PostgreSQL; SQLite serialises its writers anyway
    ).all()
    claimed = []
    for delivery_id in candidates:
        result = session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id, offered)
            .values(status=S.IN_DELIVERY, claimed_at=now, attempts=Delivery.attempts + 1, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount:  # type: ignore[attr-defined]
            claimed.append(delivery_id)
    if not claimed:
        return []
    rows = session.scalars(
        select(Delivery)
        .where(Delivery.id.in_(claimed))
        .order_by(Delivery.created_at, Delivery.id)
        .options(selectinload(Delivery.message))
        .execution_options(populate_existing=True)
    )
    return list(rows)


def acknowledge(
    session: Session, recipient_id: str, refs: Sequence[MessageRef], now: datetime
) -> list[Acknowledgement]:
    """Mark the recipient's fetched deliveries of ``refs`` delivered; one outcome per ref, in order.

    Idempotent: a second acknowledgement reports ``already_acknowledged`` and changes nothing.
    """
    outcomes = []
    for ref in refs:
        found = session.execute(
            select(Delivery.id, Delivery.status)
            .join(Message, Message.id == Delivery.message_pk)
            .where(
                Message.message_id == ref.message_id,
                Message.sender_id == ref.sender,
                Delivery.recipient_id == recipient_id,
                Delivery.mode == DeliveryMode.PULL,
            )
        ).first()
        if found is None:
            log.info(
                "acknowledgement of %s from %s by %s not counted: no such message in its mailbox",
                ref.message_id,
                ref.sender,
                recipient_id,
            )
            outcomes.append(Acknowledgement.UNKNOWN)
        elif found.status == S.DELIVERED:
            outcomes.append(Acknowledgement.ALREADY_ACKNOWLEDGED)
        elif found.status != S.IN_DELIVERY:
            log.info(
                "acknowledgement of %s from %s by %s not counted: it is %s, not fetched",
                ref.message_id,
                ref.sender,
                recipient_id,
                found.status,
            )
            outcomes.append(Acknowledgement.UNKNOWN)  # never fetched: nothing to acknowledge yet
        else:
            result = session.execute(
                update(Delivery)
                .where(Delivery.id == found.id, Delivery.status == S.IN_DELIVERY)
                .values(status=S.DELIVERED, delivered_at=now, last_error=None, next_attempt_at=None, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            # A fetched pull delivery leaves in_delivery only by an acknowledgement: if this UPDATE
            # found it gone, a concurrent acknowledgement won.
            changed = bool(result.rowcount)  # type: ignore[attr-defined]
            outcomes.append(Acknowledgement.ACKNOWLEDGED if changed else Acknowledgement.ALREADY_ACKNOWLEDGED)
            if changed:
                record(
                    session,
                    AuditEvent(
                        kind="delivery.delivered",
                        at=now,
                        message_id=ref.message_id,
                        facts={"message_id": ref.message_id, "recipient": recipient_id, "mode": "pull", "error": None},
                    ),
                )
    return outcomes
