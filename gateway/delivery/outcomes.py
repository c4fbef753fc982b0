"""The outcomes of push attempts, recorded many to a transaction (group commit).

Every attempt ends with a write: the delivery's new status and its audit entry. Written one
transaction per attempt, each pays for a connection check-out, a commit (and its flush to disk)
and a turn on the audit log's counter row. :class:`OutcomeRecorder` lets the worker threads that
finish at about the same time share one transaction: the first thread to arrive writes every
outcome waiting at that moment, the others wait for that commit; whoever arrives meanwhile goes
into the next one. Nobody waits for a timer: alone, a thread writes its own outcome at once.

On PostgreSQL the audit entries are deferred (``gateway.audit.log.record_unwaited``): the
transaction writes them to ``audit_pending`` and takes no counter row; the sequencer gives them
their indexes in its next batch, in the order they were written. Nobody waits for those indexes,
so their rows and the deliveries' UPDATEs wait for the commit and go to the server with the
COMMIT, in one round trip (``gateway.store.deferred``).

Each outcome is exact: the delivery's UPDATE is conditional on this worker still holding it, and
if a batch's transaction fails, its outcomes are written one by one so that one failure cannot
cost the others (a thread whose own write fails gets the exception, as before).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from gateway.audit.entries import AuditEvent
from gateway.audit.log import record, record_unwaited
from gateway.clock import Clock
from gateway.delivery import outbox
from gateway.delivery.policy import RetryPolicy
from gateway.store.deferred import commit, defer_writes

log = logging.getLogger(__name__)
_KINDS = {"delivered": "delivery.delivered", "failed": "delivery.dead_lettered"}


@dataclass(frozen=True)
class Outcome:
    """How push attempt number ``attempts`` of a delivery ended: ``error`` None if delivered."""

    delivery_id: int
    message_id: str
    recipient_id: str
    attempts: int
    max_attempts: int
    error: str | None


class OutcomeRecorder:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Clock,
        policy: RetryPolicy,
        max_batch: int = 32,
        defer_indexes: bool = False,
    ) -> None:
        self._sessions = sessions
        self._defer_indexes = defer_indexes
        self._clock = clock
        self._policy = policy
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._pending: list[tuple[Outcome, Future[str]]] = []
        self._writing = False
        self.batches = 0  # transactions written (for tests and the benchmark)
        self.recorded = 0

    def record(self, outcome: Outcome) -> str:
        """Write ``outcome`` (with others waiting now) and return the status the delivery was given:
        ``delivered``, ``waiting_for_retry``, ``failed`` or ``superseded``. Raises what its write raised."""
        future: Future[str] = Future()
        with self._lock:
            self._pending.append((outcome, future))
            leading = not self._writing
            self._writing = True
        if leading:
            self._write_while_pending()
        return future.result()

    def _write_while_pending(self) -> None:
        while True:
            with self._lock:
                batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
                if not batch:
                    self._writing = False
                    return
            try:
                self._write(batch)
            except Exception as failure:
                if len(batch) == 1:
                    batch[0][1].set_exception(failure)
                    continue
                log.warning("writing %d delivery outcomes together failed; writing them one by one", len(batch))
                for item in batch:
                    try:
                        self._write([item])
                    except Exception as exc:
                        item[1].set_exception(exc)

    def _write(self, batch: list[tuple[Outcome, Future[str]]]) -> None:
        with self._sessions() as session:
            session.begin()
            if self._defer_indexes:
                # The deliveries' UPDATEs and the entries' rows wait for the commit and go with it: on
                # PostgreSQL one round trip after the BEGIN's (``gateway.store.deferred``), where each
                # statement was one (a failed attempt's UPDATE, whose row count says whether the
                # delivery was still this worker's, still runs at once).
                defer_writes(session)
            now = self._clock.now()
            statuses = [self._update(session, outcome, now) for outcome, _ in batch]
            # The audit entries last: they take the audit log's counter row, held until the commit (or,
            # deferred, wait in audit_pending for the sequencer's next batch and take nothing).
            for (outcome, _), status in zip(batch, statuses, strict=True):
                if self._defer_indexes:
                    record_unwaited(session, _event(outcome, status, now))
                else:
                    record(session, _event(outcome, status, now))
            commit(session)
        self.batches += 1
        self.recorded += len(batch)
        for (_, future), status in zip(batch, statuses, strict=True):
            future.set_result(status)

    def _update(self, session: Session, outcome: Outcome, now: datetime) -> str:
        if outcome.error is None:
            outbox.delivered(session, outcome.delivery_id, now)
            return "delivered"
        return outbox.failed_attempt(
            session, outcome.delivery_id, outcome.attempts, outcome.error, now, self._policy, outcome.max_attempts
        )


def _event(outcome: Outcome, status: str, now: datetime) -> AuditEvent:
    return AuditEvent(
        kind=_KINDS.get(status, "delivery.failed_attempt"),
        at=now,
        message_id=outcome.message_id,
        facts={
            "message_id": outcome.message_id,
            "recipient": outcome.recipient_id,
            "mode": "push",
            "error": None if outcome.error is None else outcome.error[:200],
        },
    )
