"""The access history page (uses, refused attempts, messages; one's own only) and the agreement offers page."""

from __future__ import annotations

import re
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from gateway.agreements.models import Agreement
from gateway.clock import FixedClock
from gateway.messages.models import Message
from tests.conftest import PRIVATE_EMPLOYER, UNIVERSITY, Signer, example
from tests.domain.helpers import send
from tests.domain.test_season import current_offer
from tests.graduates.helpers import LI_MING, WANG_HONG, context, file_registration
from tests.grants.helpers import ask, verification_request
from tests.portal.conftest import activate, sign_in, text
from tests.portal.test_grants import created
from tests.web.helpers import csrf_token


def token_of(client: FlaskClient, grant_id: str) -> str:
    page = text(client.get(f"/graduate/grants/{grant_id}"))
    found = re.search(r'id="token" readonly spellcheck="false">([^<]+)</textarea>', page)
    assert found
    return found.group(1)


def cards(page: str) -> list[str]:
    return re.findall(r'<li class="card" data-kind=.*?</li>', page, flags=re.S)


def test_the_history_shows_uses_and_refused_attempts_newest_first(
    graduate_client: FlaskClient, client: FlaskClient, sign: Signer
) -> None:
    grant_id = created(graduate_client, max_uses="1")
    token = token_of(graduate_client, grant_id)
    assert ask(client, sign, verification_request(token)).fault is None
    refused = ask(client, sign, verification_request(token, request_id="VER-2026-000002"))
    assert refused.fault == "AUTHORISATION_EXHAUSTED"
    scope = ask(client, sign, verification_request(token, facts=("archive",), request_id="VER-2026-000003"))
    assert scope.fault == "AUTHORISATION_EXHAUSTED"  # the state is checked before the scope

    page = text(graduate_client.get("/graduate/history"))
    found = cards(page)
    kinds = [re.search(r'data-kind="(\w+)"(?: data-outcome="(\w+)")?', card).groups() for card in found]  # type: ignore[union-attr]
    assert kinds == [
        ("verification", "refused"),
        ("verification", "refused"),
        ("verification", "used"),
        ("message", None),  # filed
        ("message", None),  # submitted
    ]
    used = found[2]
    assert "北京市公安局海淀分局" in used and "身份一致性、学历信息" in used and "落户" in used
    assert "已核验" in used and f"/graduate/grants/{grant_id}" in used
    assert "使用次数已用完" in found[0] and "AUTHORISATION_EXHAUSTED" in found[0] and "档案" in found[0]
    assert "教育部门已对您的毕业去向登记备案" in found[3] and "学校提交了您的毕业去向登记" in found[4]
    assert LI_MING.identity_number not in page
    english = text(graduate_client.get("/graduate/history?lang=en"))
    assert "uses were used up" in english and "Destination registration filed" in english


def test_the_history_of_one_grant(graduate_client: FlaskClient, client: FlaskClient, sign: Signer) -> None:
    first, second = created(graduate_client), created(graduate_client, purpose="employment_onboarding")
    assert ask(client, sign, verification_request(token_of(graduate_client, first))).fault is None
    revoked = token_of(graduate_client, second)
    graduate_client.post(
        f"/graduate/grants/{second}/revoke", data={"csrf_token": csrf_token(graduate_client, "/graduate/grants/")}
    )
    refusal = ask(client, sign, verification_request(revoked, purpose="employment_onboarding", request_id="V-2"))
    assert refusal.fault == "AUTHORISATION_REVOKED"
    only_second = cards(text(graduate_client.get(f"/graduate/history?grant={second}")))
    assert len(only_second) == 1 and "您已撤销或暂停该授权" in only_second[0]
    assert len(cards(text(graduate_client.get(f"/graduate/history?grant={first}")))) == 1
    assert len(cards(text(graduate_client.get("/graduate/history")))) == 4


def test_nobody_sees_anothers_history(
    graduate_client: FlaskClient, app: Flask, client: FlaskClient, sign: Signer
) -> None:
    grant_id = created(graduate_client)
    assert ask(client, sign, verification_request(token_of(graduate_client, grant_id))).fault is None
    other = app.test_client()
    file_registration(other, sign, WANG_HONG)
    activate(other, WANG_HONG)
    page = text(other.get("/graduate/history"))
    assert len(cards(page)) == 2  # Wang Hong's own submission and filing
    assert "北京市公安局海淀分局" not in page and grant_id not in page
    assert cards(text(other.get(f"/graduate/history?grant={grant_id}"))) == []


def offer(client: FlaskClient, sign: Signer) -> None:
    code, detail = send(client, sign, current_offer(example("agreement-offer")), PRIVATE_EMPLOYER, UNIVERSITY)
    assert code is None, detail


def offer_pk(app: Flask) -> int:
    with context(app).sessions() as session:
        found: int = session.scalars(select(Agreement.id)).one()
        return found


def agreement_state(app: Flask, pk: int) -> str:
    with context(app).sessions() as session:
        agreement = session.get(Agreement, pk)
        assert agreement is not None
        return agreement.state


def test_an_offer_is_accepted_after_confirmation_and_sent_on(
    graduate_client: FlaskClient, app: Flask, client: FlaskClient, sign: Signer
) -> None:
    offer(client, sign)
    page = text(graduate_client.get("/graduate/offers"))
    assert "北京示范科技有限公司" in page and "软件开发工程师" in page and "海淀区 (110108)" in page
    pk = offer_pk(app)
    confirm = text(graduate_client.get(f"/graduate/offers/{pk}/accept"))
    assert "确定接受北京示范科技有限公司的邀约" in confirm
    assert agreement_state(app, pk) == "offered"  # asking is not answering
    token = csrf_token(graduate_client, f"/graduate/offers/{pk}/accept")
    response = graduate_client.post(f"/graduate/offers/{pk}/accept", data={"csrf_token": token})
    assert response.status_code == 303 and response.headers["Location"] == "/graduate/offers"
    after = text(graduate_client.get("/graduate/offers"))
    assert "您已接受邀约" in after and "没有等待您答复的邀约" in after
    assert agreement_state(app, pk) == "accepted"
    with context(app).sessions() as session:
        sent = session.scalars(select(Message.recipient_id).where(Message.service == "AgreementResponse")).all()
    assert sorted(sent) == sorted([UNIVERSITY, PRIVATE_EMPLOYER])
    history = text(graduate_client.get("/graduate/history"))
    assert history.count("您对就业协议邀约的答复") == 2 and "用人单位发出就业协议邀约" in history
    again = graduate_client.post(f"/graduate/offers/{pk}/decline", data={"csrf_token": token})
    assert again.status_code == 303
    assert "此邀约已答复过" in text(graduate_client.get("/graduate/offers"))


def test_an_offer_is_declined(graduate_client: FlaskClient, app: Flask, client: FlaskClient, sign: Signer) -> None:
    offer(client, sign)
    pk = offer_pk(app)
    assert "拒绝后不可撤回" in text(graduate_client.get(f"/graduate/offers/{pk}/decline"))
    token = csrf_token(graduate_client, f"/graduate/offers/{pk}/decline")
    graduate_client.post(f"/graduate/offers/{pk}/decline", data={"csrf_token": token})
    assert "您已拒绝邀约" in text(graduate_client.get("/graduate/offers"))
    assert agreement_state(app, pk) == "refused"


def test_an_expired_offer_cannot_be_answered(
    graduate_client: FlaskClient, app: Flask, client: FlaskClient, sign: Signer, clock: FixedClock
) -> None:
    offer(client, sign)
    pk = offer_pk(app)
    clock.set(clock.now() + timedelta(days=40))
    sign_in(graduate_client, LI_MING.identity_number)
    page = text(graduate_client.get("/graduate/offers"))
    assert "此邀约只能在" in page and f"/graduate/offers/{pk}/accept" not in page
    token = csrf_token(graduate_client, "/graduate/offers")
    graduate_client.post(f"/graduate/offers/{pk}/accept", data={"csrf_token": token})
    assert "此邀约的答复期限已过" in text(graduate_client.get("/graduate/offers"))
    assert agreement_state(app, pk) == "offered"


def test_another_graduates_offer_is_not_found(
    graduate_client: FlaskClient, app: Flask, client: FlaskClient, sign: Signer
) -> None:
    offer(client, sign)
    pk = offer_pk(app)
    other = app.test_client()
    file_registration(other, sign, WANG_HONG)
    activate(other, WANG_HONG)
    assert "没有等待您答复的邀约" in text(other.get("/graduate/offers"))
    assert other.get(f"/graduate/offers/{pk}/accept").status_code == 404
    token = csrf_token(other, "/graduate/offers")
    assert other.post(f"/graduate/offers/{pk}/accept", data={"csrf_token": token}).status_code == 404
    assert other.post(f"/graduate/offers/{pk}/accept").status_code == 400  # no CSRF token: refused first
    assert agreement_state(app, pk) == "offered"
