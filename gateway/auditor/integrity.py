"""The audit log's integrity as the auditor sees it, and verification runs started from the page.

A run is :func:`gateway.audit.verify.verify_log` (the same check as ``gateway audit verify``) in a
background thread of the web process, so that a long log does not hold a request open: the page
shows its progress (entries checked so far, refreshed every few seconds) and, once it ends, the
outcome with the problems found by position. The run's row in ``audit_verifications`` keeps what
the page shows; its end is also an audit entry (``audit.verified``: who, outcome, counts).

One run at a time: a run whose heartbeat is older than :data:`STALE` (its process died) is marked
interrupted and another may start. On SQLite a run holds the process's database lock while it
reads the log, so the embedded default pauses intake for that long (about 3 s per 100,000
entries); production on PostgreSQL does not.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.audit.checkpoint import checkpoint_public_key
from gateway.audit.entries import AuditEvent
from gateway.audit.log import record
from gateway.audit.log import size as log_size
from gateway.audit.models import AuditCheckpoint
from gateway.audit.verify import Report, verify_log
from gateway.auditor.models import AuditVerification, Outcome
from gateway.bootstrap import gateway_key_paths
from gateway.clock import Clock
from gateway.store.db import transaction

log = logging.getLogger(__name__)
STALE = timedelta(minutes=2)
PROGRESS_EVERY = 1.0  # seconds between progress updates of a running verification
KEPT_PROBLEMS = 50


@dataclass(frozen=True)
class Problem:
    position: int
    what: str


@dataclass(frozen=True)
class IntegrityStatus:
    entries: int
    integrated: int
    checkpoint: AuditCheckpoint | None
    last: AuditVerification | None  # the latest run, running or ended

    @property
    def pending(self) -> int:
        """Entries recorded but not yet folded into the tree by the sequencer."""
        return self.entries - self.integrated

    @property
    def running(self) -> bool:
        return self.last is not None and self.last.outcome == Outcome.RUNNING


def integrity_status(session: Session) -> IntegrityStatus:
    entries, integrated = log_size(session)
    checkpoint = session.scalar(select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc()).limit(1))
    last = session.scalar(select(AuditVerification).order_by(AuditVerification.id.desc()).limit(1))
    return IntegrityStatus(entries, integrated, checkpoint, last)


def problems(verification: AuditVerification) -> list[Problem]:
    """The problems a run kept (the first :data:`KEPT_PROBLEMS`)."""
    return [Problem(int(p["position"]), str(p["what"])) for p in json.loads(verification.details or "[]")]


def checkpoint_key(keys_dir: Path) -> ec.EllipticCurvePublicKey:
    """The public key that signs checkpoints, from the gateway's certificate; raises :class:`ConfigurationError`."""
    return checkpoint_public_key(gateway_key_paths(keys_dir)[1])


def start_verification(session: Session, username: str, now: datetime) -> AuditVerification | None:
    """A new run's row (in the caller's transaction), or None while another run is alive."""
    for running in session.scalars(select(AuditVerification).where(AuditVerification.outcome == Outcome.RUNNING)):
        if now - running.heartbeat_at < STALE:
            return None
        running.outcome = Outcome.ERROR
        running.finished_at = now
        running.error = "interrupted: the process running it stopped"
    run = AuditVerification(
        started_by=username,
        started_at=now,
        heartbeat_at=now,
        outcome=Outcome.RUNNING,
        entries=0,
        checkpoints=0,
        problems=0,
    )
    session.add(run)
    session.flush()
    return run


def run_verification(
    sessions: sessionmaker[Session], public_key: ec.EllipticCurvePublicKey, clock: Clock, run_id: int
) -> None:
    """Verify the whole log for run ``run_id``, keeping its row's progress and then its outcome."""
    checked = 0
    last_update = time.monotonic()

    def progress(rows: int) -> None:
        nonlocal checked, last_update
        checked += rows
        if time.monotonic() - last_update >= PROGRESS_EVERY:
            last_update = time.monotonic()
            with transaction(sessions) as session:
                row = session.get(AuditVerification, run_id)
                if row is not None:
                    row.entries, row.heartbeat_at = checked, clock.now()

    report: Report | None = None
    error: str | None = None
    try:
        with sessions() as session:
            report = verify_log(session, public_key, progress)
    except Exception as exc:  # the run failed; the page says so rather than a verdict
        log.exception("audit verification %d failed", run_id)
        error = f"{type(exc).__name__}: {exc}"[:500]
    _finish(sessions, clock, run_id, report, error)


def _finish(
    sessions: sessionmaker[Session], clock: Clock, run_id: int, report: Report | None, error: str | None
) -> None:
    with transaction(sessions) as session:
        row = session.get(AuditVerification, run_id)
        if row is None:
            return
        now = clock.now()
        row.finished_at = row.heartbeat_at = now
        if report is None:
            row.outcome, row.error = Outcome.ERROR, error
        else:
            row.outcome = Outcome.OK if report.ok else Outcome.PROBLEMS
            row.entries, row.checkpoints, row.problems = report.entries, report.checkpoints, len(report.problems)
            kept = [{"position": p.position, "what": p.what} for p in report.problems[:KEPT_PROBLEMS]]
            row.details = json.dumps(kept, ensure_ascii=False)
        record(
            session,
            AuditEvent(
                "audit.verified",
                now,
                {
                    "verification": row.id,
                    "username": row.started_by,
                    "outcome": row.outcome,
                    "entries": row.entries,
                    "checkpoints": row.checkpoints,
                    "problems": row.problems,
                },
            ),
        )


def run_in_background(
    sessions: sessionmaker[Session], public_key: ec.EllipticCurvePublicKey, clock: Clock, run_id: int
) -> threading.Thread:
    """Start :func:`run_verification` in a daemon thread; returns the thread."""
    thread = threading.Thread(
        target=run_verification, args=(sessions, public_key, clock, run_id), name=f"audit-verify-{run_id}", daemon=True
    )
    thread.start()
    return thread
