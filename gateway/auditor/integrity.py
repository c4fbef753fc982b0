"""The audit log's integrity as the auditor sees it, and verification runs started from the page.

A run is :func:`gateway.audit.verify.verify_log` (the same check as ``gateway audit verify``) in a
background thread of the web process, so that a long log does not hold a request open: the page
shows its progress (entries checked so far, refreshed every few seconds) and, once it ends, the
outcome with the problems found by position. The run's row in ``audit_verifications`` keeps what
the page shows; its end is also an audit entry (``audit.verified``: who, outcome, counts).

Checkpoints held outside the database (:func:`held_checkpoints`): the page checks the stored tree
against the newest checkpoint the sequencer published and against the last checkpoint this auditor
saw, which it keeps in a file of theirs under ``data/seen-checkpoints/`` (not in the database, so
that a database writer who shortens the log cannot also make the page forget what it showed). It
warns when the log no longer holds to either, and remembers a newer checkpoint only when the log
holds to the one remembered. A verification run checks the entries against both too.

One run at a time: a run whose heartbeat is older than :data:`STALE` (its process died) is marked
interrupted and another may start. On SQLite a run holds the process's database lock while it
reads the log, so the embedded default pauses intake for that long (about 3 s per 100,000
entries); production on PostgreSQL does not.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.audit import checkpoint as notes
from gateway.audit.anchors import Anchor, published_anchors, tree_holds
from gateway.audit.checkpoint import checkpoint_public_key
from gateway.audit.entries import AuditEvent
from gateway.audit.log import record
from gateway.audit.log import size as log_size
from gateway.audit.models import AuditCheckpoint
from gateway.audit.publish import CheckpointDirectory, PublishedNote
from gateway.audit.sequencer import KEY_NAME
from gateway.audit.verify import Report, verify_log
from gateway.auditor.models import AuditVerification, Outcome
from gateway.bootstrap import gateway_key_paths
from gateway.clock import Clock
from gateway.monitoring.threads import AUDIT_VERIFY, name_thread
from gateway.settings import Settings
from gateway.staff.services import USERNAME
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


@dataclass(frozen=True)
class Held:
    """A checkpoint held outside the database (``published`` or ``seen``), and what is wrong, if anything."""

    kind: str
    size: int
    time: datetime | None
    problem: str | None  # None: the stored log holds to it


def _seen_path(settings: Settings, username: str) -> Path | None:
    # The name comes from the database: only a well-formed one becomes a file name.
    return settings.seen_checkpoints_dir / f"{username}.checkpoint" if USERNAME.match(username) else None


def seen_anchor(settings: Settings, username: str) -> Anchor | None:
    """The checkpoint last seen by ``username`` on the integrity page, as an anchor for a verification run."""
    path = _seen_path(settings, username)
    try:
        note = path.read_text(encoding="utf-8", errors="replace") if path else None
    except FileNotFoundError:
        return None
    if note is None:
        return None
    try:
        size = notes.parse(note)[0].size
    except notes.CheckpointInvalid:
        size = 0  # checked at once, and reported as a checkpoint that does not verify
    return Anchor(f"last seen by {username} on the integrity page", size, note)


def held_checkpoints(
    session: Session,
    settings: Settings,
    username: str,
    public_key: ec.EllipticCurvePublicKey,
    latest: AuditCheckpoint | None,
    newest: PublishedNote | None,
) -> list[Held]:
    """The ``newest`` published checkpoint and the one ``username`` last saw, each checked against the stored tree.

    ``newest`` must be looked up before ``session`` first reads (it is published only after its
    entries are committed). Then remembers ``latest`` (the database's newest checkpoint) as seen,
    when it verifies, the tree holds to it, and it is larger than the one remembered, which the
    log still holds to.
    """
    held = []
    if newest is not None:
        try:
            note = newest.read()
        except OSError as exc:
            note = f"unreadable: {exc}"
        held.append(_held(session, "published", note, public_key, "the newest published checkpoint"))
    seen = seen_anchor(settings, username)
    seen_held = None if seen is None else _held(session, "seen", seen.note, public_key, "the checkpoint you saw last")
    if seen_held is not None:
        held.append(seen_held)
    path = _seen_path(settings, username)
    if latest is None or path is None:
        return held
    if seen_held is not None and (seen_held.problem is not None or seen_held.size >= latest.size):
        return held  # a warning stays until the log is put right; nothing newer to remember
    if _held(session, "latest", latest.note, public_key, "the newest checkpoint").problem is None:
        _remember(path, latest.note)
    return held


def _held(session: Session, kind: str, note: str, public_key: ec.EllipticCurvePublicKey, name: str) -> Held:
    try:
        point = notes.verify(note, KEY_NAME, public_key)
    except notes.CheckpointInvalid as exc:
        return Held(kind, 0, None, f"{name} does not verify: {exc}")
    return Held(kind, point.size, point.time, tree_holds(session, point, name))


def _remember(path: Path, note: str) -> None:
    """Replace the remembered checkpoint at once (a reader sees the old note or the new one)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor, temporary = tempfile.mkstemp(prefix=".", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(note)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


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
    sessions: sessionmaker[Session],
    public_key: ec.EllipticCurvePublicKey,
    clock: Clock,
    run_id: int,
    published: CheckpointDirectory | None = None,
    kept: Sequence[Anchor] = (),
) -> None:
    """Verify the whole log for run ``run_id``, keeping its row's progress and then its outcome.

    Also against the checkpoints ``published`` outside the database and those ``kept``.
    """
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
        anchors = published_anchors(published) if published is not None else iter(())
        with sessions() as session:
            report = verify_log(session, public_key, progress, anchors, kept)
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
    sessions: sessionmaker[Session],
    public_key: ec.EllipticCurvePublicKey,
    clock: Clock,
    run_id: int,
    published: CheckpointDirectory | None = None,
    kept: Sequence[Anchor] = (),
) -> threading.Thread:
    """Start :func:`run_verification` in a daemon thread; returns the thread."""

    def run() -> None:
        name_thread(AUDIT_VERIFY)
        run_verification(sessions, public_key, clock, run_id, published, kept)

    thread = threading.Thread(target=run, name=f"{AUDIT_VERIFY}-{run_id}", daemon=True)
    thread.start()
    return thread
