"""Every auditor page needs a signed-in auditor: anonymous visitors go to sign-in, administrators get 403.

The pages are checked in loops rather than parametrised tests: each test's set-up (a gateway home,
two staff accounts with argon2id hashes, a sign-in) costs more than its checks.
"""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from gateway.auditor.models import AuditVerification
from gateway.web.i18n import catalog
from tests.web.helpers import csrf_token

PAGES = ["/audit/", "/audit/messages/1", "/audit/integrity", "/audit/charts", "/audit/archives/overdue"]
POSTS = ["/audit/", "/audit/integrity/verify"]
NUMBER = "11010519491231002X"


def verifications(app: Flask) -> int:
    with app.extensions["gateway"].sessions() as session:
        return session.scalar(select(func.count()).select_from(AuditVerification)) or 0


def test_anonymous_visitors_are_sent_to_sign_in_and_start_nothing(auditor_app: Flask) -> None:
    client = auditor_app.test_client()
    for path in PAGES:
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"] == f"/staff/sign-in?next={path}"
    token = csrf_token(client, "/staff/sign-in")  # a valid token, but nobody signed in
    for path in POSTS:
        response = client.post(path, data={"csrf_token": token, "identity_number": NUMBER})
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/staff/sign-in")
        assert NUMBER not in response.headers["Location"]
    assert verifications(auditor_app) == 0


def test_administrators_are_refused_every_page_and_post(auditor_app: Flask, administrator: FlaskClient) -> None:
    for path in PAGES:
        response = administrator.get(path)
        assert response.status_code == 403, path
        assert catalog("zh")["error.forbidden.text"] in response.get_data(as_text=True)
    token = csrf_token(administrator, "/staff/")
    for path in POSTS:
        assert administrator.post(path, data={"csrf_token": token}).status_code == 403, path
    assert verifications(auditor_app) == 0


def test_auditors_see_every_page_in_both_languages(auditor: FlaskClient) -> None:
    for path in PAGES:
        if "messages" in path:
            assert auditor.get(path).status_code == 404  # no message 1 yet
            continue
        chinese = auditor.get(path + "?lang=zh")
        assert chinese.status_code == 200, path
        assert 'lang="zh-CN"' in chinese.get_data(as_text=True)
        assert "script-src 'self'" in chinese.headers["Content-Security-Policy"]
        assert chinese.headers["Cache-Control"] == "no-store"
        english = auditor.get(path + "?lang=en")
        assert english.status_code == 200, path
        assert 'lang="en"' in english.get_data(as_text=True)
        assert "<script" not in english.get_data(as_text=True)


def test_posts_need_the_csrf_token(auditor_app: Flask, auditor: FlaskClient) -> None:
    assert auditor.post("/audit/", data={"service": "AgreementOffer"}).status_code == 400
    assert auditor.post("/audit/integrity/verify", data={}).status_code == 400
    assert verifications(auditor_app) == 0


def test_the_sign_in_page_sends_auditors_to_the_audit_ui(auditor_app: Flask) -> None:
    from tests.auditor.conftest import PASSWORD

    client = auditor_app.test_client()
    token = csrf_token(client, "/staff/sign-in?next=/audit/charts")
    response = client.post(
        "/staff/sign-in?next=/audit/charts", data={"username": "ada", "password": PASSWORD, "csrf_token": token}
    )
    assert response.headers["Location"] == "/audit/charts"
    assert client.get("/audit/charts").status_code == 200
