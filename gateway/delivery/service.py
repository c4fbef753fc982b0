"""The delivery stage: a dramatiq actor that pushes one delivery, and the sweep that loses nothing.

- After the intake commits a message, ``enqueue`` sends each push delivery's id to the broker and
  marks it ``queued``; pull deliveries are ``queued`` in their mailbox at once.
- The actor ``gateway.deliver`` claims the delivery (one conditional UPDATE, so a duplicate
  broker message does nothing), builds the signed ``gw:Delivery``, calls the push connector with the
  recipient's timeout, and records the outcome: ``delivered``, ``waiting_for_retry`` with backoff,
  or ``failed`` (dead letter) past the recipient's attempt limit. An envelope that cannot be
  decrypted (its key lost from the key ring) counts as a failed attempt, retried like the others.
  Outcomes of threads that finish together share a transaction (``gateway.delivery.outcomes``);
  a recipient that stops answering, or takes its share of the threads, has its deliveries
  deferred before they are claimed (``gateway.delivery.fairness``), in batches
  (``gateway.delivery.deferrals``).
- ``sweep`` re-enqueues what a crash or a lost broker message left behind: deliveries accepted but
  never enqueued, queued ones whose broker message is gone, retries that are due, and claims whose
  worker died. It runs every few seconds in every worker (``gateway worker``, or the embedded
  in-process worker).

Messages on the broker carry only the delivery id and, where the sender knows it, the recipient's
id (JSON), never payloads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import dramatiq
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import Connector, Outbound
from gateway.clock import Clock
from gateway.delivery import outbox
from gateway.delivery.broker import beat, send_batch, still_held
from gateway.delivery.deferrals import Deferral, Deferrals
from gateway.delivery.fairness import Admission, RecipientGate, share_of
from gateway.delivery.forward import delivery_element
from gateway.delivery.outcomes import Outcome, OutcomeRecorder
from gateway.delivery.policy import RetryPolicy
from gateway.errors import PayloadUnavailable
from gateway.intake.soap import envelope
from gateway.messages.models import DeliveryStatus
from gateway.messages.payloads import PayloadCipher
from gateway.monitoring import events
from gateway.monitoring.threads import SWEEP, name_thread
from gateway.security.signer import GatewaySigner
from gateway.store.db import transaction

log = logging.getLogger(__name__)
QUEUE = "deliveries"
ACTOR_NAME = "gateway.deliver"


def delivery_actor(
    broker: dramatiq.Broker, deliver: Callable[[int, str | None], None]
) -> dramatiq.Actor[[int, str | None], None]:
    """The delivery actor on ``broker``: what a worker runs, or (with any ``deliver``) what a process
    that only sends to the queue, such as ``gateway deliveries retry --all``, sends with."""
    return dramatiq.Actor(
        deliver,
        broker=broker,
        actor_name=ACTOR_NAME,
        queue_name=QUEUE,
        priority=0,
        options={"max_retries": 0},  # retries are the outbox's, with the recipient's own limit
    )


@dataclass
class DeliveryService:
    engine: Engine  # the claim's transaction on a connection (no ORM session: nothing is read back through one)
    sessions: sessionmaker[Session]
    broker: dramatiq.Broker
    connector: Connector
    signer: GatewaySigner
    clock: Clock
    payloads: PayloadCipher
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    accepted_grace: timedelta = timedelta(seconds=60)
    gate: RecipientGate = field(init=False)
    outcomes: OutcomeRecorder = field(init=False)
    deferrals: Deferrals = field(init=False)

    def __post_init__(self) -> None:
        # On PostgreSQL the claim is one statement, atomic on its own: run without BEGIN and COMMIT
        # (the driver's autocommit), it is one round trip instead of three. The engine shares its
        # pool; a connection goes back to it with its usual transactions (SQLAlchemy resets it).
        self._single_statement = self.engine.dialect.name == "postgresql"
        self._autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self.actor = delivery_actor(self.broker, self.deliver)
        # A circuit stays open six retry delays (30 s by default): the recovery settings scale both.
        self.gate = RecipientGate(open_seconds=6 * self.policy.base_seconds)
        self.outcomes = OutcomeRecorder(
            self.sessions, self.clock, self.policy, defer_indexes=self.engine.dialect.name == "postgresql"
        )
        self.deferrals = Deferrals(self.engine, self.clock, self.policy)

    def enqueue(self, delivery_ids: list[int], recipients: Mapping[int, str] | None = None) -> None:
        """Hand push deliveries to the broker, each message naming its recipient when ``recipients``
        does (then a worker holding that recipient back defers it without a query); a broker that
        is down leaves them to the sweep."""
        if not delivery_ids:
            return
        queued_at = self.clock.now()
        try:
            send_batch(self.actor, delivery_ids, queued_at, recipients)
        except Exception:
            log.warning("broker unreachable; %d deliveries wait for the sweep", len(delivery_ids), exc_info=True)
            return
        try:
            with transaction(self.sessions) as session:
                outbox.mark_queued(session, delivery_ids, queued_at)
        except Exception:
            # The messages are stored and on the broker: the sender gets its receipt all the same.
            # Left ``accepted``, the deliveries are either delivered from the broker (a claim takes
            # ``accepted`` too) or re-enqueued by the sweep after its grace period.
            log.warning(
                "could not mark %d deliveries queued; the sweep will recover them", len(delivery_ids), exc_info=True
            )

    def deliver(self, delivery_id: int, recipient_id: str | None = None) -> None:
        """The actor: deliver one push delivery, once, and record the outcome.

        First the recipient's gate (:mod:`gateway.delivery.fairness`): a delivery to a recipient
        held back (it stopped answering, or it has its share of the threads and none of its pushes
        ends) is deferred without a claim, an attempt or a thread held, its deferral written with
        the others' of the moment (:mod:`gateway.delivery.deferrals`). ``recipient_id`` comes with
        the broker message; a message without it costs one query to find it.

        Then two transactions at most: the claim (with what the push needs), then the outcome with
        its audit entry, in one transaction with the other threads' outcomes of the moment
        (:mod:`gateway.delivery.outcomes`). Building and signing the ``gw:Delivery`` and the push
        happen between them, outside any transaction; only the push takes one of the recipient's
        slots (a delivery that finds none in time is put back, its claim undone).
        """
        recipient = recipient_id or self._recipient_of(delivery_id)
        if recipient is None:
            return  # no such push delivery (any more)
        refusal = self.gate.held(recipient, self.clock.now())
        if refusal is not None:
            assert refusal.until is not None
            self.deferrals.add(Deferral(delivery_id, recipient, refusal.until, refusal.reason))
            return
        job = self._claim(delivery_id)
        if job is not None:
            self._push_and_record(job)

    def _recipient_of(self, delivery_id: int) -> str | None:
        with (self._autocommit if self._single_statement else self.engine).connect() as connection:
            return outbox.recipient_of(connection, delivery_id)

    def _claim(self, delivery_id: int) -> outbox.PushJob | None:
        """The claim, or None: delivered already, not due yet, or another worker's.

        On PostgreSQL one statement in autocommit (``outbox.claim``: the UPDATE returns what the
        push needs); on SQLite two in a transaction."""
        if self._single_statement:
            with self._autocommit.connect() as connection:
                return outbox.claim(connection, delivery_id, self.clock.now(), self.policy)
        with self.engine.begin() as connection:
            return outbox.claim(connection, delivery_id, self.clock.now(), self.policy)

    def _push_and_record(self, job: outbox.PushJob) -> None:
        started = time.perf_counter()
        message, recipient_id = job.message, job.recipient_id
        error: str | None = None
        try:
            payload = envelope(delivery_element(message, recipient_id, job.attempts, self.signer, self.payloads))
        except PayloadUnavailable as exc:  # a lost key or a purged payload: an attempt that fails here
            log.error("cannot deliver %s to %s: %s", message.message_id, recipient_id, exc)
            error = f"{type(exc).__name__}: {exc}"
        if error is None:
            admission = self.gate.admit(recipient_id, self.clock.now(), job.timeout_seconds)
            if not admission.allowed:  # no slot in time, or held back since: the attempt never started
                self._unclaim(job, admission)
                return
            error = self._push(job, payload)
        outcome = Outcome(job.delivery_id, message.message_id, recipient_id, job.attempts, job.max_attempts, error)
        status = self.outcomes.record(outcome)  # with the other threads' outcomes of the moment
        if error is None:
            log.debug("delivered %s to %s", message.message_id, recipient_id)  # the JSON line below says it
        else:
            log.info("delivery %s to %s failed (%s): %s", message.message_id, recipient_id, status, error)
        # its JSON log line (the attempt's time, from building the Delivery to the recorded outcome)
        events.delivery_attempt(message, recipient_id, job.attempts, status, error, time.perf_counter() - started)

    def _push(self, job: outbox.PushJob, payload: bytes) -> str | None:
        """Push an admitted delivery and give its slot back; the error, None if acknowledged."""
        message = job.message
        outbound = Outbound(
            message_id=message.message_id,
            sender_id=message.sender_id,
            recipient_id=job.recipient_id,
            endpoint_url=job.endpoint_url,
            envelope=payload,
            timeout_seconds=float(job.timeout_seconds),
        )
        answered: bool | None = None  # None: never pushed
        started = time.perf_counter()
        try:
            acknowledgement = self.connector.deliver(outbound)
            answered = True
            return None if acknowledgement.positive else acknowledgement.detail
        except Exception as exc:  # the recipient is down, refuses, times out: all retried
            answered = False
            return f"{type(exc).__name__}: {exc}"
        finally:
            self.gate.release(job.recipient_id, answered, self.clock.now(), time.perf_counter() - started)

    def _unclaim(self, job: outbox.PushJob, refusal: Admission) -> None:
        assert refusal.until is not None
        with self.engine.begin() as connection:
            outbox.unclaim(connection, job.delivery_id, self.clock.now(), refusal.until, refusal.reason)
        log.info("delivery %s to %s %s", job.message.message_id, job.recipient_id, refusal.reason)

    def sweep(self) -> int:
        """Re-enqueue everything due; returns how many deliveries were sent to the broker.

        A delivery ``queued`` for longer than the grace period is sent again only if the broker no
        longer holds its message (lost with a Redis restart, say); one still waiting in a backlog
        is left where it is and looked at again after another grace period. Deliveries to a
        recipient this worker holds back are deferred again in one statement instead of being sent
        one by one only to be deferred by the actor; of a recipient whose circuit is ready for its
        probe, one is sent and the others wait for the next sweep.
        """
        beat(self.broker)
        with transaction(self.sessions) as session:
            due = outbox.due_for_push(session, self.clock.now(), self.policy, self.accepted_grace)
        if not due:
            return 0
        queued = [(d.id, d.enqueued_at) for d in due if d.status == DeliveryStatus.QUEUED and d.enqueued_at]
        held = still_held(self.broker, QUEUE, queued, timedelta(seconds=self.policy.lease_seconds))
        now = self.clock.now()
        resend, deferred = self._fair_share([d for d in due if d.id not in held], now)
        queued_at = self.clock.now()
        send_batch(self.actor, resend, queued_at, {d.id: d.recipient_id for d in due})
        with transaction(self.sessions) as session:
            if resend:
                outbox.mark_resent(session, resend, queued_at)
            if held:
                outbox.still_queued(session, sorted(held), queued_at)
            for ids, refusal in deferred:
                assert refusal.until is not None
                outbox.defer(session.connection(), ids, now, refusal.until, refusal.reason, self.policy)
        return len(resend)

    def _fair_share(self, due: list[outbox.Due], now: datetime) -> tuple[list[int], list[tuple[list[int], Admission]]]:
        """The ids to send, and per recipient held back the ids to defer with the refusal."""
        by_recipient: dict[str, list[int]] = {}
        for d in due:
            by_recipient.setdefault(d.recipient_id, []).append(d.id)
        resend: list[int] = []
        deferred: list[tuple[list[int], Admission]] = []
        for recipient_id, ids in by_recipient.items():
            refusal = self.gate.held(recipient_id, now)
            if refusal is not None:
                deferred.append((ids, refusal))
            elif self.gate.probing(recipient_id):
                resend.append(ids[0])
            else:
                resend += ids
        return sorted(resend), deferred


class Sweeper(threading.Thread):
    """Runs ``service.sweep()`` and the ``also`` tasks (the audit sequencer, the retention purge) every
    ``interval`` seconds."""

    def __init__(
        self, service: DeliveryService, interval: float = 5.0, also: tuple[Callable[[], object], ...] = ()
    ) -> None:
        super().__init__(name=SWEEP, daemon=True)
        self._service = service
        self._interval = interval
        self._tasks: tuple[Callable[[], object], ...] = (service.sweep, *also)
        self._stopping = threading.Event()  # not _stop: threading.Thread has a _stop of its own

    def run(self) -> None:
        name_thread(SWEEP)
        while not self._stopping.wait(self._interval):
            for task in self._tasks:
                try:
                    task()
                except Exception:
                    log.exception("periodic task %s failed; trying again in %.0f s", task, self._interval)

    def stop(self) -> None:
        self._stopping.set()


# How long an idle worker may take to notice a new message, in milliseconds. dramatiq's Redis
# consumer does not block on the queue: finding it empty, it polls again after a backoff that
# doubles up to its worker timeout (1 s by default), so the first message after a quiet moment
# waited up to a second before anything looked at it (bench/delivery: the healthy deliveries of
# a phase's first 0.3 s all waited 0.6 - 0.9 s). At 100 ms an idle worker polls Redis ten times
# a second (one short script each), which costs nothing measurable.
IDLE_POLL_MS = 100


def start_worker(
    service: DeliveryService, threads: int, queue_prefetch: int = 0, per_recipient: int = 0, **options: Any
) -> dramatiq.Worker:
    """A dramatiq worker on the service's broker, started (the caller stops it with ``.stop()``).

    One recipient may have at most ``per_recipient`` pushes in flight in it (0: half the threads,
    :func:`gateway.delivery.fairness.share_of`). An idle worker looks for new messages every
    :data:`IDLE_POLL_MS` at the latest (``worker_timeout`` in ``options`` sets another).
    """
    service.gate.max_in_flight = per_recipient or share_of(threads)
    options.setdefault("worker_timeout", IDLE_POLL_MS)
    worker = dramatiq.Worker(service.broker, queues={QUEUE}, worker_threads=threads, **options)
    if queue_prefetch:
        worker.queue_prefetch = queue_prefetch  # dramatiq's default (2 x threads) caps throughput
    worker.start()
    return worker
