"""``/healthz`` (the process answers) and ``/readyz`` (database and delivery queue reachable, the
audit log signable and holding to its published checkpoints)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from gateway import __version__
from gateway.audit.anchors import standing
from gateway.audit.publish import CheckpointDirectory
from gateway.delivery.broker import ping as ping_broker
from gateway.store.db import current_revision, head_revision
from gateway.store.db import ping as ping_database
from gateway.web.context import gateway

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz() -> ResponseReturnValue:
    return jsonify(status="ok", version=__version__)


@blueprint.get("/readyz")
def readyz() -> ResponseReturnValue:
    context = gateway()
    checks: dict[str, Any] = {}
    try:
        ping_database(context.engine)
        revision = current_revision(context.engine)
        head = head_revision(context.engine)
        checks["database"] = {"ok": revision == head, "revision": revision, "expected": head}
    except Exception as exc:  # any failure to reach it is the answer, not an error of ours
        checks["database"] = {"ok": False, "error": type(exc).__name__}
    try:
        ping_broker(context.broker)
        checks["delivery_queue"] = {"ok": True, "broker": type(context.broker).__name__}
    except Exception as exc:
        checks["delivery_queue"] = {"ok": False, "error": type(exc).__name__}
    try:  # the sequencer stopped at a foreign entry, or the log no longer holds to what was published
        with context.sessions() as session:
            problems = standing(session, CheckpointDirectory(context.settings.checkpoint_dir), context.clock.now())
        checks["audit_log"] = {"ok": not problems, "problems": problems}
    except Exception as exc:
        checks["audit_log"] = {"ok": False, "error": type(exc).__name__}
    ready = all(c["ok"] for c in checks.values())
    return jsonify(status="ready" if ready else "not ready", checks=checks), 200 if ready else 503
