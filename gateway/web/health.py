"""``/healthz`` (the process answers: liveness) and ``/readyz`` (this node can accept messages now).

``/readyz`` runs :data:`READINESS_CHECKS`, a list of small named checks, and answers 200 ``ready``
or 503 ``not ready`` with every check's outcome and the reasons of the failing ones. Each check
costs a few primary-key reads or one tiny write, never a scan, so a load balancer may poll every
second. Add a check by appending a ``(name, function)`` pair: the function takes the
:class:`~gateway.web.context.Gateway` and returns the details to show, or raises :class:`NotReady`
with the reason (any other exception is a failure too, named by its type and text).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from functools import cache
from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import Engine, delete, insert, select

from gateway import __version__
from gateway.audit.anchors import standing
from gateway.audit.models import AuditEntry, AuditLogState
from gateway.audit.publish import CheckpointDirectory
from gateway.delivery.broker import ping as ping_broker
from gateway.store.db import current_revision, head_revision
from gateway.store.db import ping as ping_database
from gateway.web.context import Gateway, gateway
from gateway.web.models import ReadinessProbe
from gateway.web.security import limiter

blueprint = Blueprint("health", __name__)


class NotReady(Exception):
    """A readiness check failed; the message is the reason shown in ``/readyz``."""


Check = Callable[[Gateway], dict[str, Any]]


@blueprint.get("/healthz")
def healthz() -> ResponseReturnValue:
    return jsonify(status="ok", version=__version__)


@blueprint.get("/readyz")
def readyz() -> ResponseReturnValue:
    context = gateway()
    checks: dict[str, dict[str, Any]] = {}
    for name, check in READINESS_CHECKS:
        try:
            checks[name] = {"ok": True, **check(context)}
        except NotReady as exc:
            checks[name] = {"ok": False, "reason": str(exc)}
        except Exception as exc:  # any failure to reach a dependency is the answer, not an error of ours
            checks[name] = {"ok": False, "reason": f"{type(exc).__name__}: {exc}"[:300]}
    reasons = [f"{name}: {c['reason']}" for name, c in checks.items() if not c["ok"]]
    status = "not ready" if reasons else "ready"
    return jsonify(status=status, reasons=reasons, checks=checks), 503 if reasons else 200


@cache
def _head_revision(engine: Engine) -> str | None:
    return head_revision(engine)  # reads the migration scripts: once per process, not per poll


def database(context: Gateway) -> dict[str, Any]:
    """The database answers and its schema is at the newest migration."""
    ping_database(context.engine)
    revision, head = current_revision(context.engine), _head_revision(context.engine)
    if revision != head:
        raise NotReady(f"the schema is at revision {revision}, the code needs {head}: run `gateway init`")
    return {"revision": revision}


def database_writable(context: Gateway) -> dict[str, Any]:
    """A row can be written and committed (not read-only, not full)."""
    now = context.clock.now()
    with context.sessions() as session, session.begin():
        # Inserted and deleted in one committed transaction: a real write through the journal,
        # on a row of this probe's own, so that probes of several nodes never wait on each other.
        row = session.execute(insert(ReadinessProbe).values(at=now).returning(ReadinessProbe.id)).scalar_one()
        session.execute(delete(ReadinessProbe).where(ReadinessProbe.id == row))
    return {}


def delivery_queue(context: Gateway) -> dict[str, Any]:
    """The delivery broker answers (Redis in production; the in-process broker always does)."""
    ping_broker(context.broker)
    return {"broker": type(context.broker).__name__}


def rate_limit_storage(context: Gateway) -> dict[str, Any]:
    """Where sign-in and short-code attempts are counted answers (a shared Redis in production)."""
    storage = limiter.storage
    if storage is not None and not storage.check():
        raise NotReady(f"the rate limit storage ({type(storage).__name__}) does not answer")
    return {"storage": type(storage).__name__}


def revocation(context: Gateway) -> dict[str, Any]:
    """Every trust anchor has a current revocation list: without one, messages are refused."""
    problems = context.trust.revocation_problems(context.clock.now())
    if problems:
        raise NotReady("; ".join(problems))
    return {"next_update": _earliest(context.trust.crl_next_updates().values())}


def audit_sequencer(context: Gateway) -> dict[str, Any]:
    """No audit entry waits longer than ``GATEWAY_READY_AUDIT_LAG_SECONDS`` to be integrated into the tree."""
    limit = context.settings.ready_audit_lag_seconds
    with context.sessions() as session:
        state = session.get(AuditLogState, 1)
        if state is None or state.integrated >= state.size:
            return {"pending": 0}
        oldest = session.scalar(
            select(AuditEntry.at)
            .where(AuditEntry.leaf_index >= state.integrated)
            .order_by(AuditEntry.leaf_index)
            .limit(1)
        )
        pending = state.size - state.integrated
    lag = (context.clock.now() - oldest).total_seconds() if oldest is not None else 0.0
    if limit and lag > limit:
        raise NotReady(
            f"{pending} audit entries wait to be integrated, the oldest for {lag:.0f} s (limit {limit} s): "
            "is a sequencer running (`gateway worker`, or `gateway serve` on the embedded default)?"
        )
    return {"pending": pending, "oldest_seconds": round(lag, 1)}


def audit_log(context: Gateway) -> dict[str, Any]:
    """The audit log can be signed and trusted: the sequencer has not stopped at an entry that is not the
    gateway's, and the stored tree holds to the newest checkpoint published outside the database."""
    with context.sessions() as session:
        problems = standing(session, CheckpointDirectory(context.settings.checkpoint_dir), context.clock.now())
    if problems:
        raise NotReady("; ".join(problems))
    return {}


def _earliest(moments: Iterable[datetime]) -> str | None:
    found = list(moments)
    return min(found).isoformat() if found else None


READINESS_CHECKS: list[tuple[str, Check]] = [
    ("database", database),
    ("database_writable", database_writable),
    ("delivery_queue", delivery_queue),
    ("rate_limit_storage", rate_limit_storage),
    ("revocation", revocation),
    ("audit_sequencer", audit_sequencer),
    ("audit_log", audit_log),
]
