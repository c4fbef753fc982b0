"""One JSON line per request and per delivery attempt, on standard error (logger ``gateway.events``).

Each line is one JSON object: ``event`` (``request`` or ``delivery_attempt``), ``at`` (UTC,
ISO 8601), the message id, sender, service, outcome, fault code and duration where they apply.
Lines carry ids, codes and times only, never a payload; the whole line also goes through
:func:`gateway.privacy.redact`, so that an identity number quoted in an error text is masked.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gateway.privacy import redact

if TYPE_CHECKING:
    from gateway.messages.models import Message

LOGGER = "gateway.events"
log = logging.getLogger(LOGGER)


def configure() -> None:
    """Send the event lines to standard error as they are (once per process; not through the root
    logger, whose text format would wrap them)."""
    if log.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def emit(event: str, **fields: Any) -> None:
    """Write one event line (fields that are None are left out)."""
    if not log.isEnabledFor(logging.INFO):
        return
    line = {"event": event, "at": datetime.now(UTC).isoformat(timespec="milliseconds")}
    line.update((key, value) for key, value in fields.items() if value is not None)
    log.info(redact(json.dumps(line, ensure_ascii=False, separators=(",", ":"), default=str)))


def request(method: str, path: str, status: int, client: str | None, seconds: float, **facts: str | None) -> None:
    """The line of one answered HTTP request (``path`` without its query string): the Flask app's
    requests (``gateway.monitoring.views``) and the intake's, with its message's ``facts`` (ids,
    service, outcome, fault code: ``gateway.intake.endpoint``)."""
    emit(
        "request",
        method=method,
        path=redact(path),
        status=status,
        client=client,
        duration_ms=round(seconds * 1000, 2),
        **facts,
    )


def delivery_attempt(
    message: Message, recipient_id: str, attempt: int, outcome: str, error: str | None, seconds: float
) -> None:
    """The line of one push attempt: ``outcome`` is ``delivered``, ``waiting_for_retry`` or ``failed``."""
    emit(
        "delivery_attempt",
        message_id=message.message_id,
        sender=message.sender_id,
        recipient=recipient_id,
        service=message.service,
        attempt=attempt,
        outcome=outcome,
        fault_code=error.split(":", 1)[0][:60] if error else None,  # what went wrong, as a class name
        error=error[:200] if error else None,
        duration_ms=round(seconds * 1000, 2),
    )
