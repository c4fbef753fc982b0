"""The retention purge: erase the envelopes of old messages whose deliveries are finished.

A message's envelope is purged once it was received more than ``GATEWAY_PAYLOAD_RETENTION_DAYS``
ago and none of its deliveries is still on its way: each one is ``delivered`` (pushed, or fetched
and acknowledged) or ``failed`` (dead-lettered). A plumbing request has no delivery and qualifies
by age alone. A payload still waiting for delivery is never purged, however old.

The purge sets the envelope and its key id to NULL and ``payload_purged_at`` to now, and records a
``payload.purged`` audit entry per message in the same transaction. The row, its digests (Body,
signature, certificate), its receipt and its deliveries stay, and the audit log is not touched
(its entries hold digests, never payloads), so ``gateway audit verify`` verifies as before.
Several workers may purge at once: rows are claimed ``FOR UPDATE SKIP LOCKED`` on PostgreSQL and
erased by a conditional UPDATE, so each message is purged, and recorded, once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, exists, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from gateway.audit.entries import AuditEvent
from gateway.audit.log import record
from gateway.clock import Clock, utc
from gateway.messages.models import Delivery, DeliveryStatus, Message

FINISHED = (DeliveryStatus.DELIVERED, DeliveryStatus.FAILED)


@dataclass(frozen=True)
class PurgeCandidates:
    count: int
    oldest: datetime | None
    newest: datetime | None


def _purgeable(cutoff: datetime) -> ColumnElement[bool]:
    on_its_way = exists().where(Delivery.message_pk == Message.id, Delivery.status.not_in(FINISHED))
    return Message.payload_purged_at.is_(None) & (Message.received_at < cutoff) & ~on_its_way


def candidates(session: Session, cutoff: datetime) -> PurgeCandidates:
    """How many envelopes received before ``cutoff`` a purge would erase now, and their time span."""
    count, oldest, newest = session.execute(
        select(func.count(), func.min(Message.received_at), func.max(Message.received_at)).where(_purgeable(cutoff))
    ).one()
    return PurgeCandidates(count or 0, utc(oldest) if oldest else None, utc(newest) if newest else None)


def purge_batch(session: Session, cutoff: datetime, now: datetime, retention_days: int, limit: int) -> int:
    """Purge up to ``limit`` envelopes received before ``cutoff``, oldest first; returns how many."""
    query = (
        select(Message.id, Message.message_id, Message.sender_id, Message.received_at)
        .where(_purgeable(cutoff))
        .order_by(Message.received_at, Message.id)
        .limit(limit)
        .with_for_update(skip_locked=True)  # PostgreSQL; SQLite serialises its writers anyway
    )
    purged = 0
    for pk, message_id, sender_id, received_at in session.execute(query).all():
        result = session.execute(
            update(Message)
            .where(Message.id == pk, _purgeable(cutoff))
            .values(sealed_envelope=None, envelope_key_id=None, payload_purged_at=now)
            .execution_options(synchronize_session=False)
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            continue  # purged by another worker meanwhile, or a delivery of it was retried
        purged += 1
        record(
            session,
            AuditEvent(
                kind="payload.purged",
                at=now,
                message_id=message_id,
                facts={
                    "message_id": message_id,
                    "sender": sender_id,
                    "received_at": utc(received_at).isoformat().replace("+00:00", "Z"),
                    "reason": "retention",
                    "retention_days": retention_days,
                },
            ),
        )
    return purged


@dataclass
class PayloadRetention:
    """The retention setting at work: the command's full purge and the workers' periodic one."""

    sessions: sessionmaker[Session]
    clock: Clock
    retention_days: int
    batch: int = 500
    every: timedelta = timedelta(minutes=1)  # the periodic purge runs at most this often
    batches_per_run: int = 4  # and erases at most this many batches, so the sweep stays prompt
    _last_run: float = field(default=float("-inf"), init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def enabled(self) -> bool:
        return self.retention_days > 0

    def cutoff(self) -> datetime:
        return self.clock.now() - timedelta(days=self.retention_days)

    def candidates(self) -> PurgeCandidates:
        with self.sessions() as session:
            return candidates(session, self.cutoff())

    def purge(self, progress: Callable[[int], object] = lambda _n: None, max_batches: int | None = None) -> int:
        """Purge every envelope past retention (or ``max_batches`` batches), one transaction per batch."""
        if not self.enabled:
            return 0
        total, batches = 0, 0
        while max_batches is None or batches < max_batches:
            with self.sessions() as session, session.begin():
                done = purge_batch(session, self.cutoff(), self.clock.now(), self.retention_days, self.batch)
            batches += 1
            total += done
            progress(done)
            if done < self.batch:
                break
        return total

    def run_once(self) -> int:
        """The sweep's task: a bounded purge, at most once per ``every``; returns how many were purged."""
        if not self.enabled:
            return 0
        with self._lock:
            if time.monotonic() - self._last_run < self.every.total_seconds():
                return 0
            self._last_run = time.monotonic()
        return self.purge(max_batches=self.batches_per_run)
