"""The audit log over HTTP, under ``/log/`` (``docs/audit.md``); the auditor UI lives apart, at ``/audit/``.

- ``GET /log/checkpoint``: the latest signed checkpoint note (``text/plain``).
- ``GET /log/proof/inclusion?index=N[&size=M]`` or ``?leaf_hash=HEX[&size=M]``: an inclusion proof (JSON).
- ``GET /log/proof/consistency?first=A[&second=B]``: a consistency proof (JSON).
- ``GET /log/entries?start=S[&end=E]``: the canonical bytes of entries ``[S, E)``, base64 (JSON).
- ``GET /log/checkpoints/latest`` and ``/log/checkpoints/<size>``: checkpoints as published outside
  the database (``gateway.audit.publish``), for witnesses; ``GET /log/checkpoints?start=S`` lists
  the published sizes (JSON, at most :data:`LISTED` a page).

Checkpoints and proofs hold only hashes and sizes and are public, as in Certificate Transparency:
anyone holding a receipt can check that its entry is in the signed log. Entries are ids and
digests, never identity numbers, yet together they show who exchanged what with whom and when,
and some carry free text (a failed delivery's error) or keyed hashes that link a graduate's
events; they are served only where ``GATEWAY_AUDIT_ENTRIES_PUBLIC=true`` (:func:`entries_allowed`).
Refusals are JSON ``{"error": ..., "field": ...}`` with 400 (a bad argument), 403 or 404.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, request

from gateway.audit import proofs
from gateway.audit.publish import DIGITS, CheckpointDirectory
from gateway.errors import NotFound, ValidationError
from gateway.store.db import transaction
from gateway.web.context import gateway

log = logging.getLogger(__name__)
LISTED = 1000  # published sizes per page of /log/checkpoints
blueprint = Blueprint("audit_log", __name__, url_prefix="/log")


def entries_allowed() -> bool:
    """Whether this request may read entries: the one place that decides it."""
    return gateway().settings.audit_entries_public


def _number(name: str, required: bool = False) -> int | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        if required:
            raise ValidationError(name, "is required")
        return None
    if not raw.isdigit() or len(raw) > 12:
        raise ValidationError(name, f"must be a whole number of at most 12 digits, not {raw[:40]!r}")
    return int(raw)


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _answer(compute: Callable[[], dict[str, Any]]) -> Response:
    try:
        return _json(compute())
    except ValidationError as exc:
        return _json({"error": str(exc), "field": exc.field}, 400)
    except NotFound as exc:
        return _json({"error": str(exc)}, 404)
    except LookupError as exc:  # a node the signed tree needs is not stored: the log is damaged
        log.error("audit proof failed: %s", exc)
        return _json(
            {"error": f"the audit tree is incomplete ({exc}); the operator must run `gateway audit verify`"}, 500
        )


@blueprint.get("/checkpoint")
def checkpoint() -> Response:
    with transaction(gateway().sessions) as session:
        try:
            note = proofs.latest_checkpoint(session).note
        except NotFound as exc:
            return _json({"error": str(exc)}, 404)
    return Response(note, mimetype="text/plain", headers={"Cache-Control": "no-cache"})


def _published() -> CheckpointDirectory:
    return CheckpointDirectory(gateway().settings.checkpoint_dir)


def _note(note: str) -> Response:
    return Response(note, mimetype="text/plain", headers={"Cache-Control": "no-cache"})


@blueprint.get("/checkpoints")
def published_sizes() -> Response:
    def compute() -> dict[str, Any]:
        start = _number("start") or 0
        sizes: list[int] = []
        for published in _published().published(start):
            if len(sizes) == LISTED:
                return {"start": start, "sizes": sizes, "next": published.size}
            sizes.append(published.size)
        return {"start": start, "sizes": sizes, "next": None}

    return _answer(compute)


@blueprint.get("/checkpoints/latest")
def published_latest() -> Response:
    newest = _published().latest()
    if newest is None:
        return _json({"error": "no checkpoint has been published yet"}, 404)
    return _note(newest.read())


@blueprint.get("/checkpoints/<size>")
def published_checkpoint(size: str) -> Response:
    if not size.isascii() or not size.isdigit() or len(size) > DIGITS:
        return _json({"error": f"the size must be a whole number of at most {DIGITS} digits", "field": "size"}, 400)
    note = _published().note(int(size))
    if note is None:
        return _json({"error": f"no checkpoint of {int(size)} entries has been published"}, 404)
    return _note(note)


@blueprint.get("/proof/inclusion")
def inclusion() -> Response:
    def compute() -> dict[str, Any]:
        raw_hash = request.args.get("leaf_hash", "").strip()
        index = _number("index")
        if raw_hash and index is not None:
            raise ValidationError("leaf_hash", "give either index or leaf_hash, not both")
        leaf_hash = proofs.parse_leaf_hash(raw_hash) if raw_hash else None
        if leaf_hash is None and index is None:
            raise ValidationError("index", "is required (or leaf_hash)")
        size = _number("size")
        with transaction(gateway().sessions) as session:
            return proofs.inclusion(session, index=index, size=size, leaf_hash=leaf_hash).as_json()

    return _answer(compute)


@blueprint.get("/proof/consistency")
def consistency() -> Response:
    def compute() -> dict[str, Any]:
        first = _number("first", required=True)
        assert first is not None
        second = _number("second")
        with transaction(gateway().sessions) as session:
            return proofs.consistency(session, first, second).as_json()

    return _answer(compute)


@blueprint.get("/entries")
def entries() -> Response:
    if not entries_allowed():
        return _json(
            {
                "error": "the audit log's entries are not public on this gateway (GATEWAY_AUDIT_ENTRIES_PUBLIC); "
                "checkpoints and proofs are, and auditors export a message's entries as an evidence bundle"
            },
            403,
        )

    def compute() -> dict[str, Any]:
        start = _number("start") or 0
        end = _number("end")
        with transaction(gateway().sessions) as session:
            return proofs.entries(session, start, end).as_json()

    return _answer(compute)
