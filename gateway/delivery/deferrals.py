"""Deferrals of held-back deliveries, written many to a transaction, nobody waiting for them.

When a recipient stops answering, or has its share of a worker's threads and none of its pushes
ends (``gateway.delivery.fairness``), each of its deliveries the worker takes from the broker is
put back ``waiting_for_retry`` instead of being pushed. A backlog of such deliveries sits in the
queue in front of the other recipients' ones; written one transaction each, their deferrals were
what those others waited for. :class:`Deferrals` writes them in batches: the first thread to
arrive writes every deferral waiting at that moment, grouped by recipient (one UPDATE each); the
threads arriving meanwhile only add theirs and go back to the queue without waiting, and the
writer takes them in its next round.

Nothing is lost by not waiting. A deferral not yet written when the process dies leaves its
delivery ``queued`` with its broker message gone, which the sweep sends again after its grace
period; a write that fails is logged and left to the sweep the same way.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from gateway.clock import Clock
from gateway.delivery import outbox
from gateway.delivery.policy import RetryPolicy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Deferral:
    delivery_id: int
    recipient_id: str
    until: datetime
    reason: str


class Deferrals:
    def __init__(self, engine: Engine, clock: Clock, policy: RetryPolicy) -> None:
        self._engine = engine
        self._clock = clock
        self._policy = policy
        self._lock = threading.Lock()
        self._pending: list[Deferral] = []
        self._writing = False
        self.batches = 0  # transactions written (for tests and the benchmark)
        self.written = 0

    def add(self, deferral: Deferral) -> None:
        """Defer the delivery: written now by this thread, or by the thread writing already."""
        with self._lock:
            self._pending.append(deferral)
            if self._writing:
                return
            self._writing = True
        self._write_while_pending()

    def _write_while_pending(self) -> None:
        while True:
            with self._lock:
                batch, self._pending = self._pending, []
                if not batch:
                    self._writing = False
                    return
            try:
                self._write(batch)
            except Exception:
                log.warning(
                    "could not defer %d deliveries; the sweep sends them again after its grace period",
                    len(batch),
                    exc_info=True,
                )

    def _write(self, batch: list[Deferral]) -> None:
        by_recipient: dict[str, list[Deferral]] = {}
        for deferral in batch:
            by_recipient.setdefault(deferral.recipient_id, []).append(deferral)
        now = self._clock.now()
        with self._engine.begin() as connection:
            for recipient_id, deferrals in by_recipient.items():
                latest = max(deferrals, key=lambda d: d.until)  # one time and reason for the group
                ids = [d.delivery_id for d in deferrals]
                outbox.defer(connection, ids, now, latest.until, latest.reason, self._policy)
                log.info("%d deliveries to %s %s", len(ids), recipient_id, latest.reason)
        self.batches += 1
        self.written += len(batch)
