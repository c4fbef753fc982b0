"""Every HTTP error a person can meet, as a page of the service: styled, in both languages, on every path.

One handler for every :class:`~werkzeug.exceptions.HTTPException` (a status Werkzeug, Flask-WTF's
CSRF check or Flask-Limiter raises, or a view's ``abort``), and one for anything unexpected (a 500,
logged with its traceback, never shown). The page says what happened in the reader's language and,
below it, in the other one, with a way back. A client that prefers JSON (``Accept``) gets
``{"status": ..., "error": ...}`` instead. The SOAP endpoint answers its POSTs with SOAP Faults of
its own (``gateway.intake``); these pages are for everything else.

Too many attempts (429) says how long to wait, from Flask-Limiter's window, and links back to the
form; the form has expired (CSRF) links back too.
"""

from __future__ import annotations

import logging
import math
import time

from flask import Flask, Response, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from gateway.web.i18n import in_language, other_language, translate

log = logging.getLogger(__name__)

# The statuses with words of their own (``error.<name>.title`` and ``.text`` in both catalogs);
# any other status gets the general words with its number.
KNOWN = {
    400: "bad_request",
    401: "unauthorised",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
}
CSRF = "csrf"


def init_app(app: Flask) -> None:
    # An unhandled exception reaches this as a 500 (InternalServerError with the original attached).
    app.register_error_handler(HTTPException, _http_error)


def _http_error(exc: HTTPException) -> ResponseReturnValue:
    status = exc.code or 500
    if isinstance(exc, InternalServerError) and exc.original_exception is not None:
        log.error("unexpected error on %s %s", request.method, request.path, exc_info=exc.original_exception)
    name = CSRF if isinstance(exc, CSRFError) else KNOWN.get(status, "other")
    wait = _rate_limit_wait() if status == 429 else None
    response = _page(status, name, wait)
    headers = exc.get_response().headers
    for header in ("Allow", "Retry-After", "WWW-Authenticate"):
        if header in headers:
            response.headers[header] = headers[header]
    if wait is not None:
        response.headers["Retry-After"] = str(wait)
    return response


def _page(status: int, name: str, wait: int | None) -> Response:
    values = {"status": status, "seconds": wait or 0, "minutes": math.ceil((wait or 0) / 60)}
    if _prefers_json():
        response = jsonify(status=status, error=in_language("en", f"error.{name}.title", **values))
        response.status_code = status
        return response
    other = other_language()
    page = render_template(
        "error.html",
        status=status,
        title=translate(f"error.{name}.title", **values),
        text=translate(_text_key(name, wait), **values),
        other=other,
        other_title=in_language(other, f"error.{name}.title", **values),
        other_text=in_language(other, _text_key(name, wait), **values),
        back=_back(),
    )
    return Response(page, status=status, mimetype="text/html")


def _text_key(name: str, wait: int | None) -> str:
    if name == "rate_limited" and wait is not None:
        return "error.rate_limited.wait_minutes" if wait >= 120 else "error.rate_limited.wait_seconds"
    return f"error.{name}.text"


def _rate_limit_wait() -> int | None:
    """Seconds until the breached limit's window lets the client try again, when the limiter knows."""
    from gateway.web.security import limiter

    try:
        current = limiter.current_limit
    except Exception:  # no limiter state for this request: say "a little" instead of a number
        return None
    if current is None:
        return None
    return max(1, math.ceil(current.reset_at - time.time()))


def _back() -> str | None:
    """Where "back" leads: the form that was sent (a POST's own page), else the section's start."""
    if request.method == "POST":
        return request.path
    return None


def _prefers_json() -> bool:
    best = request.accept_mimetypes.best_match(("text/html", "application/json"), default="text/html")
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]
