"""What every human-facing page shares: sessions that expire and end, CSRF tokens, rate limits, headers.

- Sessions are Flask's signed cookies, keyed by ``keys/secrets/session.key`` (made by ``gateway init``),
  HttpOnly, SameSite=Lax, Secure when ``GATEWAY_SECURE_COOKIES`` is set. A session holds who is
  signed in (:class:`SignedIn`), a random session id and, for an auditor, the keyed hashes of the
  graduates searched for (``gateway.auditor.views``), never a password or an identity number. The
  session id must name a live :class:`~gateway.web.models.WebSession` row: signing out deletes it,
  so a copy of the cookie taken before sign-out is worthless after it. A session ends after
  ``session_idle_minutes`` without a request or ``session_max_hours`` after sign-in, whichever is
  first (checked here on every read, not trusted to the browser's cookie expiry).
- CSRF: Flask-WTF's ``CSRFProtect`` on every POST; forms carry ``{{ csrf_token() }}``. The SOAP
  endpoint (machine clients sign their messages instead) is answered in front of this app
  (``gateway.intake.endpoint``), with none of this module's sessions, tokens or limits.
- Rate limits: Flask-Limiter, in ``GATEWAY_RATE_LIMIT_STORAGE`` (memory for one process; ``redis://``
  so that all gunicorn workers and nodes count together). :func:`sign_in_limit` is the decorator for
  the POST of a sign-in or activation form: it counts failed attempts per account from one client
  address, per account, and per client address, where the client address is the one the trusted
  front proxies report (:mod:`gateway.web.proxies`).
- Headers: ``nosniff`` on every answer (JSON, CSV, XML and pages alike); on pages a strict
  Content-Security-Policy (no scripts from anywhere but the gateway itself, no framing), no
  referrer, no caching of signed-in pages.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from flask import Flask, Response, current_app, request, session
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import delete

from gateway.clock import Clock
from gateway.settings import Settings
from gateway.store import rate_counts  # noqa: F401  (registers gateway+sqlite:// with limits)
from gateway.store.db import transaction
from gateway.web.context import gateway
from gateway.web.models import WebSession

csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address, default_limits=[], headers_enabled=True)

F = TypeVar("F", bound=Callable[..., Any])
_SESSION_KEY = "signed_in"
# Every answer: a browser must never read a JSON, CSV or XML answer as a page (or a script). The
# intake's answers carry it too (``gateway.intake.endpoint``, outside this app's hooks).
NO_SNIFF = {"X-Content-Type-Options": "nosniff"}
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
    app.config.setdefault("SIGN_IN_ACCOUNT_RATE_LIMIT", settings.sign_in_account_rate_limit)
    app.config.setdefault("SIGN_IN_ADDRESS_RATE_LIMIT", settings.sign_in_address_rate_limit)
    limiter.init_app(app)  # the SOAP intake has no limit, and never reaches it (gateway.intake.endpoint)
    csrf.init_app(app)
    app.after_request(_headers)
    # The pages for a refused CSRF token (400), too many attempts (429) and every other status: gateway.web.errors.


def sign_in_limit(account_field: str) -> Callable[[F], F]:
    """Limit a sign-in or activation view's failed POSTs; ``account_field`` is the form field naming the account.

    Three counts, each shared by every form that names accounts the same way (the portal's
    sign-in and activation both by identity number): per account from one client address
    (``GATEWAY_SIGN_IN_RATE_LIMIT``), per account from any address (``..._ACCOUNT_RATE_LIMIT``:
    guessing one password from many addresses), and per client address over all accounts
    (``..._ADDRESS_RATE_LIMIT``: one password tried on many accounts, shared by all forms). Only
    failures count (answers of 400 and above; a sign-in that succeeds redirects), so people who
    sign in are never held back, and an attacker who fails on one account from a shared address
    does not lock out the others there.
    """

    def account() -> str:
        return _account_key(account_field)

    def limit(config_key: str) -> Callable[[], str]:
        return lambda: str(current_app.config[config_key])

    limits = (
        limiter.shared_limit(
            limit("SIGN_IN_RATE_LIMIT"),
            scope="sign-in",
            key_func=lambda: f"{get_remote_address()}|{account()}",
            methods=["POST"],
            deduct_when=_failed,
        ),
        limiter.shared_limit(
            limit("SIGN_IN_ACCOUNT_RATE_LIMIT"),
            scope="sign-in-account",
            key_func=account,
            methods=["POST"],
            deduct_when=_failed,
        ),
        limiter.shared_limit(
            limit("SIGN_IN_ADDRESS_RATE_LIMIT"), scope="sign-in-address", methods=["POST"], deduct_when=_failed
        ),
    )

    def decorate(view: F) -> F:
        for route_limit in limits:
            view = cast(F, route_limit(view))
        return view

    return decorate


def _failed(response: Response) -> bool:
    return response.status_code >= 400


def _account_key(field: str) -> str:
    """The account a form names, as a keyed hash: identity numbers never reach the rate limit storage."""
    typed = request.form.get(field, "")[:256].strip().upper()
    return f"{field}:{gateway().hasher(typed.encode('ascii', 'backslashreplace').decode('ascii'))}"


def safe_next(target: str | None, *prefixes: str) -> str | None:
    """``target`` if it is a path on this site under one of ``prefixes``, else None: never an open redirect.

    No ``//`` anywhere and no backslash (browsers read ``/\\host`` as ``//host``), so the path cannot
    name another host.
    """
    if not target or "//" in target or "\\" in target or not target.startswith(prefixes):
        return None
    return target


def _headers(response: Response) -> Response:
    for name, value in NO_SNIFF.items():
        response.headers.setdefault(name, value)
    if response.mimetype == "text/html":
        response.headers.setdefault("Content-Security-Policy", CSP)
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
    """Start a fresh session for the account (anything from before sign-in is dropped) and record it."""
    context = gateway()
    now = clock.now()
    session_id = secrets.token_urlsafe(32)
    with transaction(context.sessions) as db:
        # Sessions past their maximum age are over whatever their cookies say: forget them here.
        oldest = now - timedelta(hours=context.settings.session_max_hours)
        db.execute(delete(WebSession).where(WebSession.started_at < oldest))
        db.add(WebSession(id=_digest(session_id), realm=realm, account_id=account_id, started_at=now))
    session.clear()
    session.permanent = True
    session[_SESSION_KEY] = {
        "realm": realm,
        "account": account_id,
        "role": role,
        "at": now.timestamp(),
        "seen": now.timestamp(),
        "sid": session_id,
    }


def sign_out() -> None:
    """End the session on the server (its cookie opens nothing any more) and in the browser."""
    data = session.get(_SESSION_KEY)
    if isinstance(data, dict) and isinstance(data.get("sid"), str):
        with transaction(gateway().sessions) as db:
            db.execute(delete(WebSession).where(WebSession.id == _digest(data["sid"])))
    session.clear()


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("ascii", "backslashreplace")).hexdigest()


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
        sign_out()
        return None
    session_id = data.get("sid")
    if not isinstance(session_id, str):
        session.clear()
        return None
    with gateway().sessions() as db:
        live = db.get(WebSession, _digest(session_id))
        if live is None or live.realm != realm or live.account_id != int(data["account"]):
            session.clear()  # signed out (here or in another browser holding the same cookie)
            return None
    data["seen"] = now
    session.modified = True
    return SignedIn(
        realm=realm,
        account_id=int(data["account"]),
        role=str(data["role"]),
        signed_in_at=datetime.fromtimestamp(float(data["at"]), tz=clock.now().tzinfo),
    )
