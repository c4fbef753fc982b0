"""What every human-facing page shares: signed sessions that expire, CSRF tokens, rate limits, headers.

- Sessions are Flask's signed cookies, keyed by ``keys/secrets/session.key`` (made by ``gateway init``),
  HttpOnly, SameSite=Lax, Secure when ``GATEWAY_SECURE_COOKIES`` is set. A session holds who is
  signed in (:class:`SignedIn`) and, for an auditor, the keyed hashes of the graduates searched for
  (``gateway.auditor.views``), never a password or an identity number, and ends after
  ``session_idle_minutes`` without a request or ``session_max_hours`` after sign-in, whichever is first
  (checked here on every read, not trusted to the browser's cookie expiry).
- CSRF: Flask-WTF's ``CSRFProtect`` on every POST except the SOAP endpoint (machine clients sign
  their messages instead); forms carry ``{{ csrf_token() }}``.
- Rate limits: Flask-Limiter, per client address, in ``GATEWAY_RATE_LIMIT_STORAGE`` (memory for one
  process; ``redis://`` so that all gunicorn workers count together). :func:`sign_in_limit` is the
  decorator for the POST of a sign-in or activation form.
- Headers: a strict Content-Security-Policy (no scripts from anywhere but the gateway itself, no
  framing), ``nosniff``, no referrer, no caching of signed-in pages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from flask import Flask, Response, session
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFProtect

from gateway.clock import Clock
from gateway.settings import Settings

csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address, default_limits=[], headers_enabled=True)

F = TypeVar("F", bound=Callable[..., Any])
_SESSION_KEY = "signed_in"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)


def init_app(app: Flask, settings: Settings) -> None:
    """Configure sessions, CSRF, the rate limiter and the response headers on ``app``."""
    key_file = settings.keys_dir / "secrets" / "session.key"
    app.config.update(
        SECRET_KEY=key_file.read_text(encoding="ascii").strip(),
        SESSION_COOKIE_NAME="gateway_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.session_max_hours),
        WTF_CSRF_TIME_LIMIT=settings.session_max_hours * 3600,
        WTF_CSRF_SSL_STRICT=settings.secure_cookies,
        RATELIMIT_STORAGE_URI=settings.rate_limit_storage,
        RATELIMIT_HEADERS_ENABLED=True,
    )
    app.config.setdefault("SIGN_IN_RATE_LIMIT", settings.sign_in_rate_limit)
    limiter.init_app(app)
    csrf.init_app(app)
    app.after_request(_headers)
    # The pages for a refused CSRF token (400), too many attempts (429) and every other status: gateway.web.errors.


def sign_in_limit() -> Callable[[F], F]:
    """Limit a sign-in or activation view's POSTs per client address (``GATEWAY_SIGN_IN_RATE_LIMIT``)."""
    from flask import current_app

    # One shared count for every sign-in and activation form, so that trying the portal's sign-in,
    # its activation and the staff sign-in in turn does not multiply an attacker's attempts.
    route_limit = limiter.shared_limit(
        lambda: str(current_app.config["SIGN_IN_RATE_LIMIT"]), scope="sign-in", methods=["POST"]
    )
    return cast(Callable[[F], F], route_limit)


def safe_next(target: str | None, *prefixes: str) -> str | None:
    """``target`` if it is a path on this site under one of ``prefixes``, else None: never an open redirect.

    No ``//`` anywhere and no backslash (browsers read ``/\\host`` as ``//host``), so the path cannot
    name another host.
    """
    if not target or "//" in target or "\\" in target or not target.startswith(prefixes):
        return None
    return target


def _headers(response: Response) -> Response:
    if response.mimetype == "text/html":
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        if _SESSION_KEY in session:
            response.headers["Cache-Control"] = "no-store"
    return response


@dataclass(frozen=True)
class SignedIn:
    """Who is signed in: ``realm`` (``graduate`` or ``staff``), the account id and, for staff, the role."""

    realm: str
    account_id: int
    role: str
    signed_in_at: datetime


def sign_in(realm: str, account_id: int, role: str, clock: Clock) -> None:
    """Start a fresh session for the account (anything from before sign-in is dropped)."""
    now = clock.now()
    session.clear()
    session.permanent = True
    session[_SESSION_KEY] = {
        "realm": realm,
        "account": account_id,
        "role": role,
        "at": now.timestamp(),
        "seen": now.timestamp(),
    }


def sign_out() -> None:
    session.clear()


def had_session(realm: str) -> bool:
    """Whether the request carries a session of ``realm``, expired or not (so that a page can say it ended)."""
    data = session.get(_SESSION_KEY)
    return isinstance(data, dict) and data.get("realm") == realm


def signed_in(realm: str, settings: Settings, clock: Clock) -> SignedIn | None:
    """The account signed in to ``realm``, or None (also when the session has expired, which ends it)."""
    data = session.get(_SESSION_KEY)
    if not isinstance(data, dict) or data.get("realm") != realm:
        return None
    now = clock.now().timestamp()
    if (
        now - float(data["seen"]) > settings.session_idle_minutes * 60
        or now - float(data["at"]) > settings.session_max_hours * 3600
    ):
        session.clear()
        return None
    data["seen"] = now
    session.modified = True
    return SignedIn(
        realm=realm,
        account_id=int(data["account"]),
        role=str(data["role"]),
        signed_in_at=datetime.fromtimestamp(float(data["at"]), tz=clock.now().tzinfo),
    )
