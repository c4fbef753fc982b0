"""Staff accounts: the CLI, sign-in with CSRF and rate limits, expiring sessions, audit entries for every sign-in."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from gateway.audit.entries import decode
from gateway.audit.models import AuditEntry
from gateway.cli import main
from gateway.clock import FixedClock
from gateway.settings import Settings
from gateway.staff.models import Role
from gateway.staff.services import add_user
from gateway.store.db import connect, session_factory, transaction
from gateway.web.app import create_app
from tests.web.helpers import csrf_token

PASSWORD = "auditor-password-1"
START = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def staff_app(settings: Settings, clock: FixedClock) -> Iterator[Flask]:
    engine = connect(settings.database_url)
    with transaction(session_factory(engine)) as session:
        add_user(session, "ada", Role.AUDITOR, PASSWORD, clock.now())
        add_user(session, "root.admin", Role.ADMINISTRATOR, PASSWORD, clock.now())
    engine.dispose()
    app = create_app(settings, clock)
    app.config["TESTING"] = True
    yield app
    app.extensions["gateway"].engine.dispose()


@pytest.fixture
def staff_client(staff_app: Flask) -> FlaskClient:
    return staff_app.test_client()


def entries(settings: Settings, kind_prefix: str) -> list[dict[str, object]]:
    engine = connect(settings.database_url)
    with session_factory(engine)() as session:
        rows = session.scalars(
            select(AuditEntry.entry).where(AuditEntry.kind.startswith(kind_prefix)).order_by(AuditEntry.leaf_index)
        ).all()
    engine.dispose()
    return [dict(decode(row)) for row in rows]


def sign_in(client: FlaskClient, username: str, password: str, next_url: str | None = None) -> object:
    path = "/staff/sign-in" + (f"?next={next_url}" if next_url else "")
    return client.post(path, data={"username": username, "password": password, "csrf_token": csrf_token(client, path)})


def test_auditor_signs_in_lands_on_the_audit_ui_and_the_sign_in_is_audited(
    staff_client: FlaskClient, settings: Settings
) -> None:
    response = sign_in(staff_client, "ada", PASSWORD)
    assert response.status_code == 302  # type: ignore[attr-defined]
    assert response.headers["Location"] == "/audit/"  # type: ignore[attr-defined]
    [event] = entries(settings, "staff.signed_in")
    assert event["username"] == "ada" and event["role"] == "auditor" and event["client"] == "127.0.0.1"


def test_wrong_password_unknown_user_and_disabled_account_get_one_answer_each_audited(
    staff_client: FlaskClient, staff_app: Flask, settings: Settings, clock: FixedClock
) -> None:
    bodies = []
    for username, password in (("ada", "wrong-password-123"), ("nobody", PASSWORD)):
        response = sign_in(staff_client, username, password)
        assert response.status_code == 401  # type: ignore[attr-defined]
        bodies.append(response.get_data(as_text=True))  # type: ignore[attr-defined]
    assert all("用户名或密码不正确" in body for body in bodies)
    engine = connect(settings.database_url)
    with transaction(session_factory(engine)) as session:
        from gateway.staff.services import set_enabled

        set_enabled(session, "ada", False, clock.now())
    engine.dispose()
    assert sign_in(staff_client, "ada", PASSWORD).status_code == 401  # type: ignore[attr-defined]
    reasons = [event["reason"] for event in entries(settings, "staff.sign_in_refused")]
    assert reasons == ["wrong password", "unknown user", "disabled"]


def test_the_roles_are_apart(staff_client: FlaskClient) -> None:
    response = sign_in(staff_client, "root.admin", PASSWORD, next_url="/audit/")
    assert response.headers["Location"] == "/staff/"  # type: ignore[attr-defined]
    page = staff_client.get("/staff/")
    assert page.status_code == 200 and "root.admin" in page.get_data(as_text=True)
    other = staff_client.application.test_client()
    sign_in(other, "ada", PASSWORD)
    assert other.get("/staff/").status_code == 403


def test_a_post_without_the_csrf_token_is_refused(staff_client: FlaskClient) -> None:
    response = staff_client.post("/staff/sign-in", data={"username": "ada", "password": PASSWORD})
    assert response.status_code == 400
    assert "表单已过期" in response.get_data(as_text=True)


def test_sign_in_is_rate_limited_per_client(staff_app: Flask, staff_client: FlaskClient) -> None:
    staff_app.config["SIGN_IN_RATE_LIMIT"] = "3 per minute"
    codes = [sign_in(staff_client, "ada", "wrong-password-123").status_code for _ in range(3)]  # type: ignore[attr-defined]
    assert codes == [401, 401, 401]
    refused = sign_in(staff_client, "ada", PASSWORD)  # even the right password, until the window passes
    assert refused.status_code == 429  # type: ignore[attr-defined]
    assert "尝试次数过多" in refused.get_data(as_text=True)  # type: ignore[attr-defined]


def test_sessions_end_after_idle_time_and_after_the_maximum(
    staff_client: FlaskClient, clock: FixedClock, settings: Settings
) -> None:
    sign_in(staff_client, "root.admin", PASSWORD)
    clock.set(START + timedelta(minutes=settings.session_idle_minutes - 1))
    assert staff_client.get("/staff/").status_code == 200
    clock.set(clock.now() + timedelta(minutes=settings.session_idle_minutes + 1))
    assert staff_client.get("/staff/").status_code == 302  # idle too long: signed out
    sign_in(staff_client, "root.admin", PASSWORD)
    for _ in range(settings.session_max_hours * 3 + 1):  # busy all day, never idle
        clock.set(clock.now() + timedelta(minutes=20))
        staff_client.get("/staff/")
    assert staff_client.get("/staff/").status_code == 302


def test_sign_out_ends_the_session_and_is_audited(staff_client: FlaskClient, settings: Settings) -> None:
    sign_in(staff_client, "root.admin", PASSWORD)
    token = csrf_token(staff_client, "/staff/")
    assert staff_client.post("/staff/sign-out", data={"csrf_token": token}).status_code == 302
    assert staff_client.get("/staff/").status_code == 302
    assert [e["username"] for e in entries(settings, "staff.signed_out")] == ["root.admin"]


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/x",
        "javascript:alert(1)",
        "/\\evil.example/x",
        "/audit/\\\\evil.example",
    ],
)
def test_next_never_leaves_the_site(staff_app: Flask, target: str) -> None:
    for username, landing in (("ada", "/audit/"), ("root.admin", "/staff/")):
        response = sign_in(staff_app.test_client(), username, PASSWORD, next_url=target)
        assert response.headers["Location"] == landing  # type: ignore[attr-defined]


def test_pages_carry_the_security_headers(staff_client: FlaskClient) -> None:
    response = staff_client.get("/staff/sign-in")
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    cookie = staff_client.get_cookie("gateway_session")
    sign_in(staff_client, "ada", PASSWORD)
    cookie = staff_client.get_cookie("gateway_session")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"


def test_users_cli_adds_lists_and_disables(home: object, monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    monkeypatch.chdir(settings.data_dir.parent)
    runner = CliRunner()
    added = runner.invoke(
        main, ["users", "add", "grace", "--role", "auditor", "--password-stdin"], input=PASSWORD + "\n"
    )
    assert added.exit_code == 0, added.output
    weak = runner.invoke(main, ["users", "add", "weak", "--role", "auditor", "--password-stdin"], input="short\n")
    assert weak.exit_code != 0 and "password" in weak.output
    taken = runner.invoke(
        main, ["users", "add", "grace", "--role", "auditor", "--password-stdin"], input=PASSWORD + "\n"
    )
    assert taken.exit_code != 0 and "exists" in taken.output
    assert runner.invoke(main, ["users", "disable", "grace"]).exit_code == 0
    listed = json.loads(runner.invoke(main, ["users", "list", "--json"]).output)
    assert [(u["username"], u["role"], u["enabled"]) for u in listed] == [("grace", "auditor", False)]
    assert "password" not in json.dumps(listed)
    assert [e["kind"] for e in entries(settings, "staff.user")] == ["staff.user_added", "staff.user_disabled"]


def test_next_within_the_roles_pages_is_followed(staff_client: FlaskClient) -> None:
    response = sign_in(staff_client, "ada", PASSWORD, next_url="/audit/charts")
    assert response.headers["Location"] == "/audit/charts"  # type: ignore[attr-defined]
