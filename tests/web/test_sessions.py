"""Signing out ends the session on the server: a cookie captured before sign-out opens nothing after it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from gateway.clock import FixedClock
from gateway.graduates import accounts
from gateway.settings import Settings
from gateway.staff.models import Role
from gateway.staff.services import add_user
from gateway.store.db import transaction
from gateway.web.app import create_app
from gateway.web.models import WebSession
from tests.conftest import Signer
from tests.graduates.helpers import LI_MING, file_registration
from tests.web.helpers import csrf_token

PASSWORD = "session-password-1"
COOKIE = "gateway_session"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime.now(UTC).replace(microsecond=0))  # now: signed messages carry fresh timestamps


@pytest.fixture
def app(settings: Settings, clock: FixedClock) -> Iterator[Flask]:
    application = create_app(settings, clock)
    application.config["TESTING"] = True
    with transaction(application.extensions["gateway"].sessions) as session:
        add_user(session, "ada", Role.AUDITOR, PASSWORD, clock.now())
    yield application
    application.extensions["gateway"].engine.dispose()


def captured(client: FlaskClient) -> str:
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None
    return cookie.value


def replaying(app: Flask, cookie: str) -> FlaskClient:
    """Another browser (the thief's) holding a copy of ``cookie``."""
    thief = app.test_client()
    thief.set_cookie(COOKIE, cookie)
    return thief


def live_sessions(app: Flask) -> int:
    with app.extensions["gateway"].sessions() as session:
        return int(session.scalar(select(func.count()).select_from(WebSession)) or 0)


def staff_signed_in(app: Flask) -> FlaskClient:
    client = app.test_client()
    token = csrf_token(client, "/staff/sign-in")
    response = client.post("/staff/sign-in", data={"username": "ada", "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302
    return client


def graduate_signed_in(app: Flask, client: FlaskClient, sign: Signer) -> FlaskClient:
    file_registration(client, sign, LI_MING)
    context = app.extensions["gateway"]
    with transaction(context.sessions) as session:
        accounts.activate(
            session,
            context.hasher,
            LI_MING.identity_number,
            LI_MING.name,
            LI_MING.verification_number,
            PASSWORD,
            context.clock.now(),
        )
    graduate = app.test_client()
    token = csrf_token(graduate, "/graduate/sign-in")
    data = {"identity_number": LI_MING.identity_number, "password": PASSWORD, "csrf_token": token}
    assert graduate.post("/graduate/sign-in", data=data).status_code == 302
    return graduate


def test_a_graduates_captured_cookie_opens_nothing_after_sign_out(
    app: Flask, client: FlaskClient, sign: Signer
) -> None:
    graduate = graduate_signed_in(app, client, sign)
    cookie = captured(graduate)
    thief = replaying(app, cookie)
    assert thief.get("/graduate/grants/").status_code == 200  # before sign-out, a copy works: that is the threat
    token = csrf_token(graduate, "/graduate/")
    assert graduate.post("/graduate/sign-out", data={"csrf_token": token}).status_code == 302
    assert graduate.get("/graduate/").status_code == 302
    for path in ("/graduate/", "/graduate/grants/", "/graduate/history"):
        replayed = replaying(app, cookie).get(path)
        assert replayed.status_code == 302 and replayed.headers["Location"].startswith("/graduate/sign-in"), path
    assert thief.get("/graduate/grants/").status_code == 302  # the thief's own, refreshed copy too
    assert live_sessions(app) == 0


def test_a_staff_members_captured_cookie_opens_nothing_after_sign_out(app: Flask) -> None:
    auditor = staff_signed_in(app)
    cookie = captured(auditor)
    assert replaying(app, cookie).get("/audit/").status_code == 200
    token = csrf_token(auditor, "/audit/")
    assert auditor.post("/staff/sign-out", data={"csrf_token": token}).status_code == 302
    replayed = replaying(app, cookie).get("/audit/")
    assert replayed.status_code == 302 and replayed.headers["Location"].startswith("/staff/sign-in")
    assert live_sessions(app) == 0


def test_signing_out_one_session_leaves_the_others(app: Flask) -> None:
    laptop, phone = staff_signed_in(app), staff_signed_in(app)
    assert live_sessions(app) == 2
    phone.post("/staff/sign-out", data={"csrf_token": csrf_token(phone, "/audit/")})
    assert laptop.get("/audit/").status_code == 200 and phone.get("/audit/").status_code == 302


def test_the_database_holds_a_hash_of_the_session_id_and_forgets_old_sessions(
    app: Flask, clock: FixedClock, settings: Settings
) -> None:
    auditor = staff_signed_in(app)
    data = app.session_interface.get_signing_serializer(app).loads(captured(auditor))  # type: ignore[attr-defined]
    session_id = data["signed_in"]["sid"]
    with app.extensions["gateway"].sessions() as session:
        [row] = session.scalars(select(WebSession)).all()
        assert row.id == hashlib.sha256(session_id.encode()).hexdigest() and session_id not in row.id
        assert (row.realm, row.started_at) == ("staff", clock.now())
    clock.set(clock.now() + timedelta(hours=settings.session_max_hours, seconds=1))
    assert auditor.get("/audit/").status_code == 302  # past its maximum age
    staff_signed_in(app)  # a sign-in forgets the sessions past their maximum age
    assert live_sessions(app) == 1


def test_a_cookie_without_a_session_id_is_not_a_session(app: Flask, clock: FixedClock) -> None:
    """A cookie signed with the session key but naming no live session (as before this change) opens nothing."""
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    now = clock.now().timestamp()
    forged = serializer.dumps(
        {"signed_in": {"realm": "staff", "account": 1, "role": "auditor", "at": now, "seen": now}}
    )
    assert replaying(app, forged).get("/audit/").status_code == 302
