"""Grant pages: the form and its refusals, token, short code and QR, the list, pause, resume, revoke; one's own only."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from gateway.clock import FixedClock
from gateway.grants.models import Grant
from gateway.grants.tokens import SHORT_CODE_ALPHABET
from tests.conftest import (
    AGENCY_CHAOYANG,
    EDUCATION_DEPARTMENT,
    HUKOU_OFFICE,
    PRIVATE_EMPLOYER,
    SOE_EMPLOYER,
    UNIVERSITY,
    Signer,
)
from tests.graduates.helpers import LI_MING, WANG_HONG, context, file_registration
from tests.portal.conftest import activate, sign_in, text
from tests.web.helpers import csrf_token

GRANT_PAGE = re.compile(r"^/graduate/grants/([0-9a-f-]{36})$")


def create(client: FlaskClient, **changes: str | list[str]) -> object:
    data: dict[str, str | list[str]] = {
        "verifier": HUKOU_OFFICE,
        "facts": ["identity_match", "education"],
        "purpose": "settlement",
        "purpose_text": "",
        "valid_days": "7",
        "max_uses": "1",
        **changes,
        "csrf_token": csrf_token(client, "/graduate/grants/new"),
    }
    return client.post("/graduate/grants/new", data=data)


def created(client: FlaskClient, **changes: str | list[str]) -> str:
    response = create(client, **changes)
    assert response.status_code == 302, text(response)  # type: ignore[attr-defined]
    found = GRANT_PAGE.match(response.headers["Location"])  # type: ignore[attr-defined]
    assert found
    return found.group(1)


def post(client: FlaskClient, grant_id: str, action: str, **extra: str) -> object:
    token = csrf_token(client, f"/graduate/grants/{grant_id}/revoke")
    return client.post(f"/graduate/grants/{grant_id}/{action}", data={"csrf_token": token, **extra})


def stored(app: Flask, grant_id: str) -> Grant:
    with context(app).sessions() as session:
        grant = session.scalar(select(Grant).where(Grant.id == grant_id))
        assert grant is not None
        return grant


def test_the_form_offers_only_organisations_that_may_verify(graduate_client: FlaskClient) -> None:
    page = text(graduate_client.get("/graduate/grants/new"))
    choices = set(re.findall(r'<option value="([0-9A-Z]{18})"', page))
    assert {HUKOU_OFFICE, AGENCY_CHAOYANG, PRIVATE_EMPLOYER, SOE_EMPLOYER} <= choices
    assert UNIVERSITY not in choices and EDUCATION_DEPARTMENT not in choices
    assert 'value="7"' in page and 'max="90"' in page  # the default validity and its limit
    for label in (
        "户籍管理部门",
        "人才服务机构",
        "用人单位",
        "身份一致性",
        "学历信息",
        "毕业去向",
        "档案",
        "落户",
        "入职手续",
    ):
        assert label in page


def test_a_new_grant_shows_its_token_short_code_and_qr(graduate_client: FlaskClient, app: Flask) -> None:
    grant_id = created(graduate_client, verifier=AGENCY_CHAOYANG, facts=["archive"], purpose="archive_receipt")
    page = text(graduate_client.get(f"/graduate/grants/{grant_id}"))
    assert "授权已创建" in page
    grant = stored(app, grant_id)
    assert (grant.verifier_id, grant.facts, grant.purpose, grant.max_uses, grant.status) == (
        AGENCY_CHAOYANG,
        "archive",
        "archive_receipt",
        1,
        "active",
    )
    assert (grant.expires_at - grant.created_at) == timedelta(days=7)
    [token] = re.findall(r'<textarea class="token" id="token" readonly spellcheck="false">([^<]+)</textarea>', page)
    claims = context(app).grant_tokens.read(token)
    assert (claims.grant_id, claims.audience) == (grant_id, AGENCY_CHAOYANG)
    short = f"{grant.short_code[:4]}-{grant.short_code[4:]}"
    assert short in page and set(grant.short_code) <= set(SHORT_CODE_ALPHABET)
    [qr] = re.findall(r'<div class="qr" role="img" aria-label="[^"]+">(<svg .*?</svg>)</div>', page)
    assert "<script" not in qr and 'class="segno"' in qr
    assert "/graduate/static/portal.js" in page
    script = graduate_client.get("/graduate/static/portal.js")
    script.close()
    assert script.status_code == 200 and script.mimetype == "text/javascript"


def test_validity_and_uses_as_chosen(graduate_client: FlaskClient, app: Flask) -> None:
    grant = stored(app, created(graduate_client, valid_days="90", max_uses="3", purpose="other", purpose_text="租房"))
    assert (grant.expires_at - grant.created_at, grant.max_uses, grant.purpose_text) == (timedelta(days=90), 3, "租房")
    page = text(graduate_client.get("/graduate/grants/"))
    assert "3 / 3" in page and "有效" in page and "其他: 租房" in page


@pytest.mark.parametrize(
    ("changes", "field_message"),
    [
        ({"facts": []}, "请至少选择一项可核验的信息"),
        ({"facts": ["identity_match", "salary"]}, "请至少选择一项可核验的信息"),
        ({"purpose": "other", "purpose_text": " "}, "请填写用途说明"),
        ({"purpose": "curiosity"}, "请选择用途"),
        ({"valid_days": "91"}, "有效期须为 1 到 90 之间的整数天"),
        ({"valid_days": "0"}, "有效期须为 1 到 90 之间的整数天"),
        ({"valid_days": "seven"}, "有效期须为 1 到 90 之间的整数天"),
        ({"max_uses": "0"}, "使用次数须为 1 到 100 之间的整数"),
        ({"max_uses": "-1"}, "使用次数须为 1 到 100 之间的整数"),
        ({"verifier": UNIVERSITY}, "该单位无权发起核验请求"),
        ({"verifier": "91110000600037341L"}, "该单位无权发起核验请求"),
    ],
)
def test_a_grant_that_breaks_a_rule_is_refused_with_the_field_marked(
    graduate_client: FlaskClient, app: Flask, changes: dict[str, str | list[str]], field_message: str
) -> None:
    response = create(graduate_client, **changes)
    assert response.status_code == 400  # type: ignore[attr-defined]
    page = text(response)
    assert "授权未创建" in page and field_message in page
    with context(app).sessions() as session:
        assert session.scalar(select(Grant.id)) is None


def test_the_form_keeps_what_was_chosen_after_a_refusal(graduate_client: FlaskClient) -> None:
    page = text(create(graduate_client, verifier=SOE_EMPLOYER, facts=["destination"], valid_days="100"))
    assert f'value="{SOE_EMPLOYER}" selected' in page
    assert 'value="destination" checked' in page and 'value="100"' in page


def test_pause_resume_and_revoke(graduate_client: FlaskClient, app: Flask) -> None:
    grant_id = created(graduate_client)
    assert post(graduate_client, grant_id, "pause").status_code == 303  # type: ignore[attr-defined]
    page = text(graduate_client.get(f"/graduate/grants/{grant_id}"))
    assert "授权已暂停" in page and "已暂停" in page and stored(app, grant_id).status == "paused"
    assert 'id="token"' in page  # still shown: it works again once resumed
    response = post(graduate_client, grant_id, "resume", back="list")
    assert response.headers["Location"] == "/graduate/grants/"  # type: ignore[attr-defined]
    assert "授权已恢复" in text(graduate_client.get("/graduate/grants/"))
    assert stored(app, grant_id).status == "active"
    confirm = text(graduate_client.get(f"/graduate/grants/{grant_id}/revoke"))
    assert "确定撤销" in confirm and "确认撤销" in confirm
    assert stored(app, grant_id).status == "active"  # asking is not revoking
    post(graduate_client, grant_id, "revoke")
    page = text(graduate_client.get(f"/graduate/grants/{grant_id}"))
    assert "授权已撤销" in page and 'id="token"' not in page and "此授权已不能使用" in page
    assert stored(app, grant_id).status == "revoked"


def test_steps_a_grant_is_not_in_the_state_for(graduate_client: FlaskClient) -> None:
    grant_id = created(graduate_client)
    post(graduate_client, grant_id, "resume")
    assert "只有已暂停的授权可以恢复" in text(graduate_client.get(f"/graduate/grants/{grant_id}"))
    post(graduate_client, grant_id, "revoke")
    post(graduate_client, grant_id, "revoke")
    assert "此授权已被撤销" in text(graduate_client.get(f"/graduate/grants/{grant_id}"))
    post(graduate_client, grant_id, "pause")
    assert "只有有效的授权可以暂停" in text(graduate_client.get(f"/graduate/grants/{grant_id}"))


def test_an_expired_grant_says_so(graduate_client: FlaskClient, clock: FixedClock) -> None:
    grant_id = created(graduate_client, valid_days="1")
    clock.set(clock.now() + timedelta(days=1, seconds=1))
    sign_in_again = graduate_client.get(f"/graduate/grants/{grant_id}")
    assert sign_in_again.status_code == 302  # a day idle ends the session too
    sign_in(graduate_client, LI_MING.identity_number)
    page = text(graduate_client.get(f"/graduate/grants/{grant_id}"))
    assert "已过期" in page and 'id="token"' not in page


def test_another_graduates_grant_is_not_found(
    graduate_client: FlaskClient, app: Flask, client: FlaskClient, sign: Signer
) -> None:
    grant_id = created(graduate_client)
    other = app.test_client()
    file_registration(other, sign, WANG_HONG)
    assert activate(other, WANG_HONG).status_code == 302  # type: ignore[attr-defined]
    assert other.get(f"/graduate/grants/{grant_id}").status_code == 404
    assert other.get(f"/graduate/grants/{grant_id}/revoke").status_code == 404
    token = csrf_token(other, "/graduate/grants/new")
    for action in ("revoke", "pause", "resume"):
        response = other.post(f"/graduate/grants/{grant_id}/{action}", data={"csrf_token": token})
        assert response.status_code == 404, action
    assert "页面不存在，或您无权查看" in text(other.get(f"/graduate/grants/{grant_id}"))
    assert grant_id not in text(other.get("/graduate/grants/"))
    assert stored(app, grant_id).status == "active"
    assert other.get("/graduate/grants/not-a-grant").status_code == 404


def test_grant_posts_need_the_csrf_token(graduate_client: FlaskClient, app: Flask) -> None:
    grant_id = created(graduate_client)
    for path in ("/graduate/grants/new", f"/graduate/grants/{grant_id}/revoke", f"/graduate/grants/{grant_id}/pause"):
        response = graduate_client.post(path, data={"verifier": HUKOU_OFFICE, "facts": "education"})
        assert response.status_code == 400 and "表单已过期" in text(response), path
    assert stored(app, grant_id).status == "active"
    with context(app).sessions() as session:
        assert len(session.scalars(select(Grant.id)).all()) == 1


def test_english_pages(graduate_client: FlaskClient) -> None:
    grant_id = created(graduate_client)
    page = text(graduate_client.get(f"/graduate/grants/{grant_id}?lang=en"))
    assert "For the organisation" in page and "Short code" in page and "Valid until" in page


def test_every_fields_error_at_once_and_no_verifier_is_said_so(graduate_client: FlaskClient) -> None:
    response = create(
        graduate_client, verifier="", facts=[], purpose="other", purpose_text="", valid_days="0", max_uses="x"
    )
    assert response.status_code == 400  # type: ignore[attr-defined]
    page = text(response)
    for field in ("verifier", "facts", "purpose_text", "valid_days", "max_uses"):
        assert f'<p class="field-error" id="{field}-error">' in page, field
        assert re.search(rf'id="{field}"[^>]*aria-describedby="{field}-hint {field}-error" aria-invalid="true"', page)
    assert "请选择核验单位" in page and "不能发送核验请求" not in page
    assert "请更正以下 5 处" in page


def test_the_same_grant_shows_the_same_token_and_qr_code_on_every_view(graduate_client: FlaskClient) -> None:
    grant_id = created(graduate_client)
    views = [text(graduate_client.get(f"/graduate/grants/{grant_id}")) for _ in range(3)]
    tokens = {re.search(r'id="token" readonly spellcheck="false">([^<]+)</textarea>', v).group(1) for v in views}  # type: ignore[union-attr]
    codes = {re.search(r'<div class="qr".*?</div>', v, re.S).group(0) for v in views}  # type: ignore[union-attr]
    assert len(tokens) == 1 and len(codes) == 1
