"""The counters and histograms the intake feeds, created once per process on first use.

Nothing is created at import time: ``gateway serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` before
gunicorn forks its workers, and each worker creates its instruments on its first message, so that
their values go to that worker's files and ``/metrics`` adds up all workers (prometheus-client's
multiprocess mode). Without the variable (tests, ``gateway worker``) they live in this process only.

Observing costs a few microseconds per message (docs/operations.md gives the measured figure).
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, values

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from gateway.intake.pipeline import Inbound, ReceiptIssuer, Stage

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Stage times run from tens of microseconds (splitting the envelope) to tens of milliseconds (a
# signature, a write); a whole message from about a millisecond to seconds under load.
STAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
INTAKE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class Instruments:
    registry: CollectorRegistry  # this process's own (without multiprocess mode)
    messages: Counter  # gateway_messages_total{service, outcome, code}
    intake_seconds: Histogram  # gateway_intake_seconds{outcome}: the whole request, read to answer
    stage_seconds: Histogram  # gateway_intake_stage_seconds{stage}


_lock = threading.Lock()
_instruments: Instruments | None = None


def instruments() -> Instruments:
    """This process's instruments (created on the first call)."""
    global _instruments
    if _instruments is None:
        with _lock:
            if _instruments is None:
                _instruments = _create()
    return _instruments


def _create() -> Instruments:
    # prometheus-client picks its value store when it is first imported, which may be before
    # `gateway serve` set the variable: pick again, so that this worker writes its own files.
    if os.environ.get(MULTIPROC_ENV) and values.ValueClass is values.MutexValue:
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    registry = CollectorRegistry(auto_describe=True)
    return Instruments(
        registry=registry,
        messages=Counter(
            "gateway_messages",
            "Messages answered by the intake: accepted, or refused with a fault code.",
            ["service", "outcome", "code"],
            registry=registry,
        ),
        intake_seconds=Histogram(
            "gateway_intake_seconds",
            "Time from reading a SOAP request to its answer (receipt or fault), by outcome.",
            ["outcome"],
            buckets=INTAKE_BUCKETS,
            registry=registry,
        ),
        stage_seconds=Histogram(
            "gateway_intake_stage_seconds",
            "Time spent in each intake stage (a refused message stops at the stage that refused it).",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=registry,
        ),
    )


def count_message(service: str | None, code: str | None, seconds: float, resent: bool = False) -> None:
    """Count one answered SOAP request: accepted (``code`` None), resent (an accepted message sent
    again, answered with its receipt) or refused with ``code``."""
    found = instruments()
    outcome = "refused" if code is not None else "resent" if resent else "accepted"
    # An unknown or unreadable service name is reported as "unknown": a label is never free text.
    found.messages.labels(service=_service_label(service), outcome=outcome, code=code or "").inc()
    found.intake_seconds.labels(outcome=outcome).observe(seconds)


_SERVICE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")


def _service_label(service: str | None) -> str:
    return service if service and _SERVICE_NAME.fullmatch(service) else "unknown"


class TimedStage:
    """An intake stage whose time goes to ``gateway_intake_stage_seconds{stage=name}``.

    A database stage's time is noted in ``inbound.stage_times`` and observed after the batch's
    commit, in the request's thread (``Pipeline.process``): in the writer, a histogram's
    observation (two writes to the multiprocess files, each under a lock) made the database's
    lock wait, eight times a message. A CPU check's time is observed at once.
    """

    def __init__(self, stage: Stage, name: str) -> None:
        self.stage = stage
        self.name = name
        self._observe: Callable[[float], None] | None = None  # bound on the first message, in the worker

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stage, name)  # the wrapped stage's other methods (the receipt's ``again``)

    def __call__(self, inbound: Inbound, session: Session) -> None:
        started = time.perf_counter()
        try:
            self.stage(inbound, session)
        finally:
            if self._observe is None:
                self._observe = instruments().stage_seconds.labels(stage=self.name).observe
            _observe_or_note(inbound, self._observe, time.perf_counter() - started)


def _observe_or_note(inbound: Inbound, observe: Callable[[float], None], seconds: float) -> None:
    """Observe ``seconds`` now, or, in the writer (``inbound.stage_times`` is a list there), note them
    for the request's thread to observe after the batch's commit."""
    noted = getattr(inbound, "stage_times", None)
    if noted is None:
        observe(seconds)
    else:
        noted.append((observe, seconds))


class TimedReceipts:
    """A receipt issuer whose signing time goes to ``gateway_intake_stage_seconds{stage=name}``."""

    def __init__(self, receipts: ReceiptIssuer, name: str = "issue_receipt") -> None:
        self.receipts = receipts
        self.name = name
        self._observe: Callable[[float], None] | None = None  # bound on the first receipt, in the worker

    def prepare(self, inbound: Inbound) -> None:
        self.receipts.prepare(inbound)

    def sign(self, inbound: Inbound) -> None:
        """Signed in the writer (in the batch), its time is noted for the request's thread, as a database
        stage's is (``TimedStage``); signed after the commit, in the request's thread, observed at once."""
        started = time.perf_counter()
        try:
            self.receipts.sign(inbound)
        finally:
            if self._observe is None:
                self._observe = instruments().stage_seconds.labels(stage=self.name).observe
            _observe_or_note(inbound, self._observe, time.perf_counter() - started)

    def keep(self, inbound: Inbound, session: Session) -> None:
        self.receipts.keep(inbound, session)

    def again(self, session: Session, sender: str, message_id: str) -> bytes | None:
        return self.receipts.again(session, sender, message_id)


def timed_stages(stages: Sequence[Stage]) -> list[Stage]:
    """``stages`` each wrapped in a :class:`TimedStage` named after it (``ValidateSchema`` -> ``validate_schema``)."""
    return [TimedStage(stage, stage_name(stage)) for stage in stages]


def stage_name(stage: object) -> str:
    raw = getattr(stage, "__name__", None) or type(stage).__name__
    return re.sub(r"(?<!^)(?=[A-Z])", "_", raw).lower()
