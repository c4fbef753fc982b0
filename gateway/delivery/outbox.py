"""The outbox's state changes, each one atomic in the database.

A delivery is *claimed* by one conditional UPDATE, so that two workers (or a worker and a sweep)
handed the same delivery cannot both deliver it: the one whose UPDATE changed the row goes on,
the other drops it. That, and recipients de-duplicating by sender and message id, is what makes
delivery exactly-once in effect.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import ColumnElement, Connection, Table, and_, bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from gateway.delivery.policy import RetryPolicy
from gateway.errors import PayloadPurged
from gateway.messages.models import Delivery, DeliveryStatus, Message
from gateway.registry.models import Participant
from gateway.store.deferred import write

S = DeliveryStatus


def _claimable(now: datetime, policy: RetryPolicy) -> ColumnElement[bool]:
    """Deliverable now: waiting for a worker, a retry that is due, or a dead worker's claim."""
    stale = now - timedelta(seconds=policy.lease_seconds)
    return or_(
        Delivery.status.in_([S.ACCEPTED, S.QUEUED]),
        and_(Delivery.status == S.WAITING_FOR_RETRY, Delivery.next_attempt_at <= now),
        and_(Delivery.status == S.IN_DELIVERY, Delivery.claimed_at < stale),
    )


# The statements of every push attempt, built once as Core statements on the tables (not the ORM's
# unit of work: nothing here is read back through a session), executed on a connection.
_D = cast(Table, Delivery.__table__)
_M = cast(Table, Message.__table__)
_P = cast(Table, Participant.__table__)
_CLAIMABLE = and_(
    _D.c.id == bindparam("delivery_id"),
    or_(
        _D.c.status.in_([S.ACCEPTED.value, S.QUEUED.value]),
        and_(_D.c.status == S.WAITING_FOR_RETRY.value, _D.c.next_attempt_at <= bindparam("now")),
        and_(_D.c.status == S.IN_DELIVERY.value, _D.c.claimed_at < bindparam("stale")),
    ),
)
_CLAIMED = {
    "status": S.IN_DELIVERY.value,
    "claimed_at": bindparam("now"),
    "attempts": _D.c.attempts + 1,
    "updated_at": bindparam("now"),
}
_JOB_COLUMNS = (
    _D.c.attempts,
    _D.c.recipient_id,
    _M.c.id,
    _M.c.message_id,
    _M.c.sender_id,
    _M.c.recipient_id.label("message_recipient_id"),
    _M.c.service,
    _M.c.service_version,
    _M.c.correlation_id,
    _M.c.received_at,
    _M.c.envelope,
    _M.c.envelope_key_id,
    _M.c.payload_purged_at,
    _P.c.endpoint_url,
    _P.c.push_timeout_seconds,
    _P.c.max_delivery_attempts,
)
# PostgreSQL: the claim and what the push needs in one statement and one round trip
# (UPDATE ... FROM messages, participants ... RETURNING, the row's new attempt count with it).
_CLAIM_JOB = (
    update(_D)
    .where(_CLAIMABLE, _M.c.id == _D.c.message_pk, _P.c.id == _D.c.recipient_id)
    .values(_CLAIMED)
    .returning(*_JOB_COLUMNS)
)
# SQLite's RETURNING names only the updated table's columns: the claim, then a read.
_CLAIM = update(_D).where(_CLAIMABLE).values(_CLAIMED).returning(_D.c.attempts)
_JOB = (
    select(*_JOB_COLUMNS)
    .select_from(_D.join(_M, _M.c.id == _D.c.message_pk).join(_P, _P.c.id == _D.c.recipient_id))
    .where(_D.c.id == bindparam("delivery_id"))
)
_DELIVERED = (
    update(_D)
    .where(_D.c.id == bindparam("delivery_id"), _D.c.status == S.IN_DELIVERY.value)
    .values(
        status=S.DELIVERED.value,
        delivered_at=bindparam("now"),
        last_error=None,
        next_attempt_at=None,
        updated_at=bindparam("now"),
    )
)
_FAILED_ATTEMPT = (
    update(_D)
    .where(_D.c.id == bindparam("delivery_id"), _D.c.status == S.IN_DELIVERY.value)
    .values(
        status=bindparam("new_status"),
        last_error=bindparam("error"),
        updated_at=bindparam("now"),
        next_attempt_at=bindparam("next_at"),
    )
)


@dataclass(frozen=True)
class PushJob:
    """A push delivery claimed by this worker, with what its push needs.

    ``message`` is a transient :class:`Message` holding only the columns a delivery reads.
    """

    delivery_id: int
    message: Message
    recipient_id: str
    attempts: int
    endpoint_url: str
    timeout_seconds: int
    max_attempts: int


def claim(connection: Connection, delivery_id: int, now: datetime, policy: RetryPolicy) -> PushJob | None:
    """Take a push delivery into ``in_delivery`` and read what its push needs; None if it is not
    (or no longer) deliverable now. One statement on PostgreSQL, two on SQLite."""
    values = {"delivery_id": delivery_id, "now": now, "stale": now - timedelta(seconds=policy.lease_seconds)}
    if connection.dialect.name == "postgresql":
        row = connection.execute(_CLAIM_JOB, values).first()
    elif connection.execute(_CLAIM, values).first() is None:
        row = None
    else:
        row = connection.execute(_JOB, {"delivery_id": delivery_id}).first()
    if row is None:
        return None
    message = Message(
        id=row.id,
        message_id=row.message_id,
        sender_id=row.sender_id,
        recipient_id=row.message_recipient_id,
        service=row.service,
        service_version=row.service_version,
        correlation_id=row.correlation_id,
        received_at=row.received_at,
        sealed_envelope=row.envelope,
        envelope_key_id=row.envelope_key_id,
        payload_purged_at=row.payload_purged_at,
    )
    return PushJob(
        delivery_id,
        message,
        row.recipient_id,
        row.attempts,
        row.endpoint_url or "",
        row.push_timeout_seconds,
        row.max_delivery_attempts,
    )


def recipient_of(connection: Connection, delivery_id: int) -> str | None:
    """Whom ``delivery_id`` goes to (for a broker message that does not say)."""
    return connection.execute(select(_D.c.recipient_id).where(_D.c.id == delivery_id)).scalar()


def defer(
    connection: Connection, delivery_ids: list[int], now: datetime, until: datetime, reason: str, policy: RetryPolicy
) -> None:
    """Put deliverable push deliveries back until ``until`` without an attempt (fairness: their
    recipient is held back); the sweep sends them again then. One statement."""
    connection.execute(
        update(_D)
        .where(_D.c.id.in_(delivery_ids), _claimable(now, policy))
        .values(status=S.WAITING_FOR_RETRY.value, next_attempt_at=until, last_error=reason[:500], updated_at=now)
    )


def unclaim(connection: Connection, delivery_id: int, now: datetime, until: datetime, reason: str) -> None:
    """Undo a claim whose attempt never started (the push was not admitted) and defer the delivery."""
    connection.execute(
        update(_D)
        .where(_D.c.id == delivery_id, _D.c.status == S.IN_DELIVERY.value)
        .values(
            status=S.WAITING_FOR_RETRY.value,
            attempts=_D.c.attempts - 1,
            next_attempt_at=until,
            last_error=reason[:500],
            updated_at=now,
        )
    )


def delivered(session: Session, delivery_id: int, now: datetime) -> None:
    """Mark an acknowledged push delivered (a row kept for the commit where ``session`` keeps them:
    ``gateway.store.deferred``; nothing reads it back)."""
    write(session, _DELIVERED, {"delivery_id": delivery_id, "now": now})


def failed_attempt(
    session: Session,
    delivery_id: int,
    attempts: int,
    error: str,
    now: datetime,
    policy: RetryPolicy,
    max_attempts: int,
) -> str:
    """Record failed attempt number ``attempts``: ``waiting_for_retry`` with the next time, or
    ``failed`` (a dead letter) at the recipient's limit. Returns the status it was given, or
    ``superseded`` when the delivery was no longer this worker's (its claim was taken over)."""
    dead = attempts >= max_attempts
    status = S.FAILED if dead else S.WAITING_FOR_RETRY
    result = session.connection().execute(
        _FAILED_ATTEMPT,
        {
            "delivery_id": delivery_id,
            "new_status": status.value,
            "error": error[:500],
            "now": now,
            "next_at": None if dead else now + policy.delay(attempts),
        },
    )
    return status.value if result.rowcount else "superseded"


def mark_queued(session: Session, delivery_ids: list[int], now: datetime) -> None:
    session.execute(
        update(Delivery)
        .where(Delivery.id.in_(delivery_ids), Delivery.status == S.ACCEPTED)
        .values(status=S.QUEUED, enqueued_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )


def mark_resent(session: Session, delivery_ids: list[int], now: datetime) -> None:
    """The sweep sent these again: they are ``queued`` as of now (so the next sweep waits its grace)."""
    session.execute(
        update(Delivery)
        .where(Delivery.id.in_(delivery_ids), Delivery.status.in_([S.ACCEPTED, S.QUEUED, S.WAITING_FOR_RETRY]))
        .values(status=S.QUEUED, enqueued_at=now, updated_at=now, next_attempt_at=None)
        .execution_options(synchronize_session=False)
    )


@dataclass(frozen=True)
class Due:
    """A push delivery the sweep looks at: its id, status, when it was last queued, to whom."""

    id: int
    status: str
    enqueued_at: datetime | None
    recipient_id: str


def due_for_push(session: Session, now: datetime, policy: RetryPolicy, accepted_grace: timedelta) -> list[Due]:
    """Push deliveries that may need (re-)enqueuing: never enqueued or queued longer than the grace
    period (the sweep asks the broker about the queued ones), due for retry, or held by a dead worker."""
    stale = now - timedelta(seconds=policy.lease_seconds)
    query = select(Delivery.id, Delivery.status, Delivery.enqueued_at, Delivery.recipient_id).where(
        Delivery.mode == "push",
        or_(
            and_(Delivery.status.in_([S.ACCEPTED, S.QUEUED]), Delivery.updated_at < now - accepted_grace),
            and_(Delivery.status == S.WAITING_FOR_RETRY, Delivery.next_attempt_at <= now),
            and_(Delivery.status == S.IN_DELIVERY, Delivery.claimed_at < stale),
        ),
    )
    rows = session.execute(query.order_by(Delivery.id).limit(1000))
    return [Due(row.id, row.status, row.enqueued_at, row.recipient_id) for row in rows]


def still_queued(session: Session, delivery_ids: list[int], now: datetime) -> None:
    """The broker still holds these: look again after another grace period (``updated_at`` = now)."""
    session.execute(
        update(Delivery)
        .where(Delivery.id.in_(delivery_ids), Delivery.status == S.QUEUED)
        .values(updated_at=now)
        .execution_options(synchronize_session=False)
    )


def retry(session: Session, delivery_id: int, now: datetime) -> Delivery | None:
    """An operator's retry of a failed (dead-lettered) or waiting delivery, with a fresh attempt count.

    A push delivery becomes a retry due now, which the next sweep of any worker enqueues (the
    command line cannot reach an in-process broker, the sweep always can); a pull delivery goes
    back into the mailbox. Raises :class:`PayloadPurged` when the retention purge erased the envelope.
    """
    delivery = session.get(Delivery, delivery_id)
    if delivery is None:
        return None
    if delivery.status in (S.FAILED, S.WAITING_FOR_RETRY):
        if delivery.message.payload_purged_at is not None:
            raise PayloadPurged(
                f"delivery #{delivery.id} cannot be retried: the envelope of message {delivery.message.message_id} "
                f"was purged at {delivery.message.payload_purged_at} under the retention setting"
            )
        delivery.attempts = 0
        delivery.updated_at = now
        if delivery.mode == "push":
            delivery.status = S.WAITING_FOR_RETRY
            delivery.next_attempt_at = now
        else:
            delivery.status = S.QUEUED
            delivery.next_attempt_at = None
    return delivery


@dataclass(frozen=True)
class BulkRetry:
    """What :func:`retry_dead_letters` did: push deliveries to send (ids), pull ones back in their
    mailbox, and dead letters left alone because their envelope was purged."""

    recipients: dict[int, str]  # the push deliveries: delivery id: recipient id
    pull: int
    purged: int

    @property
    def push_ids(self) -> list[int]:
        return sorted(self.recipients)


def retry_dead_letters(
    session: Session, now: datetime, *, recipient: str | None, since: datetime | None, enqueue_now: bool
) -> BulkRetry:
    """Every dead letter (``failed``), optionally to one recipient and dead-lettered since a time,
    tried again with a fresh attempt count, in the caller's one transaction.

    Push deliveries become ``queued`` as of ``now`` when ``enqueue_now`` (the caller then sends
    them to the broker with ``now`` as their queued-at, and the sweep sends any it did not), or
    retries due now for the sweep otherwise; pull deliveries go back into the mailbox. Dead letters
    whose envelope the retention purge erased cannot be retried and are only counted.
    """
    scope = [Delivery.status == S.FAILED]
    if recipient:
        scope.append(Delivery.recipient_id == recipient)
    if since is not None:
        scope.append(Delivery.updated_at >= since)  # a dead letter's last change is its dead-lettering
    purged_messages = select(Message.id).where(Message.payload_purged_at.is_not(None))
    purged = session.scalar(
        select(func.count()).select_from(Delivery).where(*scope, Delivery.message_pk.in_(purged_messages))
    )
    retriable = [*scope, Delivery.message_pk.not_in(purged_messages)]
    fresh = {"attempts": 0, "updated_at": now}
    push = (
        {"status": S.QUEUED, "enqueued_at": now, "next_attempt_at": None}
        if enqueue_now
        else {
            "status": S.WAITING_FOR_RETRY,
            "next_attempt_at": now,
        }
    )
    recipients = {
        row.id: row.recipient_id
        for row in session.execute(
            update(Delivery)
            .where(*retriable, Delivery.mode == "push")
            .values(**fresh, **push)
            .returning(Delivery.id, Delivery.recipient_id)
            .execution_options(synchronize_session=False)
        )
    }
    pull = session.execute(
        update(Delivery)
        .where(*retriable, Delivery.mode == "pull")
        .values(**fresh, status=S.QUEUED, next_attempt_at=None)
        .execution_options(synchronize_session=False)
    )
    return BulkRetry(recipients, int(pull.rowcount), int(purged or 0))  # type: ignore[attr-defined]
