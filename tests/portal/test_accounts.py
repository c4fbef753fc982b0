"""Activation, sign-in and sign-out: every refusal with its message, rate limits, CSRF, expiring sessions.

An identity number is never in a URL, a log line or a page, except masked.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from gateway.audit.entries import Value, decode
from gateway.audit.models import AuditEntry
from gateway.clock import FixedClock
from gateway.settings import Settings
from tests.conftest import Signer
from tests.graduates.helpers import LI_MING, WANG_HONG, context, file_registration
from tests.portal.conftest import PASSWORD, activate, sign_in, text
from tests.web.helpers import csrf_token

MASKED = "1101**********041X"


def audit_kinds(app: Flask, prefix: str) -> list[dict[str, Value]]:
    with context(app).sessions() as session:
        rows = session.scalars(
            select(AuditEntry.entry).where(AuditEntry.kind.startswith(prefix)).order_by(AuditEntry.leaf_index)
        ).all()
    return [decode(row) for row in rows]


def test_pages_need_a_signed_in_graduate(client: FlaskClient) -> None:
    for path in ("/graduate/", "/graduate/grants/", "/graduate/grants/new", "/graduate/history", "/graduate/offers"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/graduate/sign-in?next=" + path[:10])


def test_activation_signs_the_graduate_in(app: Flask, client: FlaskClient, sign: Signer) -> None:
    file_registration(client, sign, LI_MING)
    response = activate(client)
    assert response.status_code == 302 and response.headers["Location"] == "/graduate/?welcome=1"  # type: ignore[attr-defined]
    home = text(client.get("/graduate/?welcome=1"))
    assert "李明，您好" in home and "账户已激活" in home
    [event] = audit_kinds(app, "graduate.activated")
    assert LI_MING.identity_number not in str(event)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "李四"}, "没有与该身份证号码、姓名和核验号相符的已备案毕业去向登记"),
        ({"verification_number": "HY2025BJ0000000"}, "没有与该身份证号码、姓名和核验号相符的已备案毕业去向登记"),
        ({"identity_number": WANG_HONG.identity_number}, "没有与该身份证号码、姓名和核验号相符的已备案毕业去向登记"),
        ({"identity_number": "110105200303150410"}, "这不是有效的居民身份证号码"),
        ({"name": ""}, "请填写所有栏目"),
        ({"password_confirm": "another password 2"}, "两次输入的密码不一致"),
    ],
)
def test_wrong_activation_data_is_refused_with_its_message(
    client: FlaskClient, sign: Signer, changes: dict[str, str], message: str
) -> None:
    file_registration(client, sign, LI_MING)
    response = activate(client, changes=changes)
    assert response.status_code == 400  # type: ignore[attr-defined]
    page = text(response)
    assert message in page
    assert LI_MING.identity_number not in page and WANG_HONG.identity_number not in page
    assert client.get("/graduate/").status_code == 302  # not signed in


def test_a_refused_activation_shows_the_number_masked_and_keeps_the_other_fields(
    client: FlaskClient, sign: Signer
) -> None:
    file_registration(client, sign, LI_MING)
    page = text(activate(client, name="李四"))
    assert MASKED in page and 'value="李四"' in page and f'value="{LI_MING.verification_number}"' in page


@pytest.mark.parametrize("password", ["short 1", "aaaaaaaaaaaaaa", "x11010520030315041Xy"])
def test_a_weak_password_is_refused(client: FlaskClient, sign: Signer, password: str) -> None:
    file_registration(client, sign, LI_MING)
    response = activate(client, password=password)
    assert response.status_code == 400  # type: ignore[attr-defined]
    assert "密码强度不足" in text(response)


def test_a_second_activation_is_refused(client: FlaskClient, sign: Signer, app: Flask) -> None:
    file_registration(client, sign, LI_MING)
    activate(client)
    other = app.test_client()
    response = activate(other, password="another password 2")
    assert response.status_code == 409  # type: ignore[attr-defined]
    assert "该账户已激活，请直接登录" in text(response)
    assert sign_in(other, LI_MING.identity_number, "another password 2").status_code == 401  # type: ignore[attr-defined]


def test_sign_in_and_out(graduate_client: FlaskClient, app: Flask) -> None:
    fresh = app.test_client()
    response = sign_in(fresh, LI_MING.identity_number.lower(), next_url="/graduate/grants/")
    assert response.status_code == 302 and response.headers["Location"] == "/graduate/grants/"  # type: ignore[attr-defined]
    assert fresh.get("/graduate/grants/").status_code == 200
    token = csrf_token(fresh, "/graduate/")
    assert fresh.post("/graduate/sign-out", data={"csrf_token": token}).status_code == 302
    assert fresh.get("/graduate/").status_code == 302
    kinds = [e["kind"] for e in audit_kinds(app, "graduate.sign")]
    assert kinds == ["graduate.signed_in", "graduate.signed_out"]


@pytest.mark.parametrize("identity_number", [LI_MING.identity_number, WANG_HONG.identity_number, "not a number"])
def test_a_wrong_sign_in_gets_one_answer(graduate_client: FlaskClient, app: Flask, identity_number: str) -> None:
    fresh = app.test_client()
    response = sign_in(fresh, identity_number, "wrong password 9")
    assert response.status_code == 401  # type: ignore[attr-defined]
    page = text(response)
    assert "身份证号码" in page and "或密码不正确，或账户尚未激活" in page
    assert identity_number not in page or identity_number == "not a number"
    assert fresh.get("/graduate/").status_code == 302
    assert [e["kind"] for e in audit_kinds(app, "graduate.sign")] == ["graduate.sign_in_refused"]


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/", "//evil.example/graduate/", "/graduate//evil.example", "/\\evil.example/graduate/"],
)
def test_next_stays_in_the_portal(graduate_client: FlaskClient, app: Flask, target: str) -> None:
    response = sign_in(app.test_client(), LI_MING.identity_number, next_url=target)
    assert response.headers["Location"] == "/graduate/"  # type: ignore[attr-defined]


def test_sign_in_and_activation_of_one_account_are_rate_limited_together(
    app: Flask, client: FlaskClient, sign: Signer
) -> None:
    app.config["SIGN_IN_RATE_LIMIT"] = "4 per minute"
    file_registration(client, sign, LI_MING)
    assert [activate(client, name="李四").status_code for _ in range(2)] == [400, 400]  # type: ignore[attr-defined]
    codes = [sign_in(client, LI_MING.identity_number, "wrong password 9").status_code for _ in range(2)]  # type: ignore[attr-defined]
    assert codes == [401, 401]
    refused = activate(client)  # the right data, but the window is used up by the four attempts
    assert refused.status_code == 429  # type: ignore[attr-defined]
    assert "尝试次数过多" in text(refused)
    assert sign_in(client, LI_MING.identity_number).status_code == 429  # type: ignore[attr-defined]
    other = sign_in(client, WANG_HONG.identity_number, "wrong password 9")
    assert other.status_code == 401  # type: ignore[attr-defined]  # another account from this address is not locked out
    staff = client.post("/staff/sign-in", data={"username": "x", "csrf_token": csrf_token(client, "/staff/sign-in")})
    assert staff.status_code == 401
    assert client.get("/graduate/sign-in").status_code == 200  # only the POSTs are counted


def test_posts_without_the_csrf_token_are_refused(graduate_client: FlaskClient, app: Flask) -> None:
    fresh = app.test_client()
    for path, data in (
        ("/graduate/sign-in", {"identity_number": LI_MING.identity_number, "password": PASSWORD}),
        ("/graduate/activate", {"identity_number": LI_MING.identity_number, "name": LI_MING.name}),
    ):
        response = fresh.post(path, data=data)
        assert response.status_code == 400 and "表单已过期" in text(response), path
    assert graduate_client.post("/graduate/sign-out").status_code == 400
    assert graduate_client.get("/graduate/").status_code == 200  # still signed in


def test_sessions_expire_when_idle_and_after_the_maximum(
    graduate_client: FlaskClient, clock: FixedClock, settings: Settings
) -> None:
    clock.set(clock.now() + timedelta(minutes=settings.session_idle_minutes - 1))
    assert graduate_client.get("/graduate/").status_code == 200
    clock.set(clock.now() + timedelta(minutes=settings.session_idle_minutes + 1))
    expired = graduate_client.get("/graduate/grants/")
    assert expired.status_code == 302
    assert expired.headers["Location"] == "/graduate/sign-in?next=/graduate/grants/&again=1"
    assert "请登录后继续" in text(graduate_client.get(expired.headers["Location"]))
    sign_in(graduate_client, LI_MING.identity_number)
    for _ in range(settings.session_max_hours * 3 + 1):  # busy all day, never idle
        clock.set(clock.now() + timedelta(minutes=20))
        graduate_client.get("/graduate/")
    assert graduate_client.get("/graduate/").status_code == 302


def test_a_staff_session_is_not_a_graduate_session(graduate_client: FlaskClient) -> None:
    assert graduate_client.get("/staff/").status_code == 302  # the graduate realm does not open staff pages


def test_no_identity_number_in_urls_or_logs(
    app: Flask, client: FlaskClient, sign: Signer, caplog: pytest.LogCaptureFixture
) -> None:
    file_registration(client, sign, LI_MING)
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    responses = [activate(client, name="李四"), activate(client), sign_in(app.test_client(), LI_MING.identity_number)]
    for response in responses:
        assert LI_MING.identity_number not in response.headers.get("Location", "")  # type: ignore[attr-defined]
        assert LI_MING.identity_number not in text(response)
    assert LI_MING.identity_number not in caplog.text
