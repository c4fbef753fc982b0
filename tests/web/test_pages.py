"""One service with a name and a face: the layout and footer on every page, the landing page, the privacy
notice, and styled bilingual error pages for every status on every path (issue 17, item 1)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape

from gateway.settings import Operator, Settings
from gateway.web.app import create_app
from gateway.web.i18n import catalog

OPERATOR = Operator(
    name="北京示范就业服务中心",
    name_en="Beijing Demonstration Employment Service Centre",
    phone="010-12345678",
    email="help@example.cn",
    hours="工作日 9:00–17:00",
    hours_en="Working days 9:00–17:00",
)
# Pages of every part of the service, as a visitor who is not signed in reaches them.
PAGES = ("/", "/privacy", "/directory", "/graduate/sign-in", "/graduate/activate", "/staff/sign-in", "/docs/")


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    application = create_app(settings.with_overrides(operator=OPERATOR, payload_retention_days=90))
    application.config["TESTING"] = True
    yield application
    application.extensions["gateway"].engine.dispose()


def page(client: FlaskClient, path: str, **headers: str) -> tuple[int, str]:
    response = client.get(path, headers=headers, follow_redirects=True)
    return response.status_code, response.get_data(as_text=True)


@pytest.mark.parametrize("path", [*PAGES, "/nope", "/graduate/nope", "/audit/messages/1", "/soap"])
def test_every_page_has_the_one_name_the_operator_and_the_privacy_link(client: FlaskClient, path: str) -> None:
    _, html = page(client, path)
    assert "高校毕业生就业信息交换平台" in html and "Graduate Exchange Gateway" in html
    footer = html[html.index('<footer class="site">') :]
    assert OPERATOR.name in footer and OPERATOR.phone in footer and OPERATOR.email in footer
    assert OPERATOR.hours in footer
    assert 'href="/privacy"' in footer
    assert '<link rel="stylesheet" href="/static/site.css">' in html
    # No inline style or script: the Content-Security-Policy allows neither.
    assert "<style" not in html and " style=" not in html
    assert re.search(r"<script(?![^>]*\bsrc=)", html) is None


def test_the_footer_speaks_english_too(client: FlaskClient) -> None:
    _, html = page(client, "/?lang=en")
    footer = html[html.index('<footer class="site">') :]
    assert OPERATOR.name_en in footer and OPERATOR.hours_en in footer and OPERATOR.name not in footer


def test_an_operator_not_configured_is_said_so(settings: Settings) -> None:
    application = create_app(settings)
    try:
        html = application.test_client().get("/").get_data(as_text=True)
    finally:
        application.extensions["gateway"].engine.dispose()
    assert "GATEWAY_OPERATOR_NAME" in html[html.index("<footer") :]


def test_the_stylesheet_is_served_and_the_policy_allows_only_the_sites_own_styles(client: FlaskClient) -> None:
    css = client.get("/static/site.css")
    assert css.status_code == 200 and css.mimetype == "text/css"
    css.close()
    policy = client.get("/").headers["Content-Security-Policy"]
    assert "style-src 'self';" in policy and "unsafe-inline" not in policy and "script-src 'self'" in policy
    directory_policy = client.get("/directory").headers["Content-Security-Policy"]
    assert "unsafe-inline" not in directory_policy and "style-src 'self'" in directory_policy


def test_the_landing_page_opens_the_doors(client: FlaskClient) -> None:
    status, html = page(client, "/")
    assert status == 200
    for door in ("/graduate/sign-in", "/graduate/activate", "/soap?wsdl", "/docs/", "/directory", "/staff/sign-in"):
        assert f'href="{door}"' in html, door
    assert catalog("zh")["landing.lead"] in html
    _, english = page(client, "/?lang=en")
    assert str(escape(catalog("en")["landing.lead"])) in english and '<html lang="en">' in english


def test_the_privacy_notice_states_the_settings_in_force(client: FlaskClient) -> None:
    status, html = page(client, "/privacy")
    assert status == 200
    assert "个人信息保护说明" in html and OPERATOR.name in html and OPERATOR.email in html
    assert "全部投递完成 90 天后删除" in html  # GATEWAY_PAYLOAD_RETENTION_DAYS
    assert "{" not in html.split("<main", 1)[1].split("</main>")[0]  # every placeholder filled
    _, english = page(client, "/privacy?lang=en")
    assert "Privacy notice" in english and "deleted 90 days after" in english


def test_the_operator_changes_the_notice_and_it_cannot_carry_html(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "zh.md").write_text(
        "# 我们的说明\n\n运营单位：{operator}。<script>alert(1)</script>\n", encoding="utf-8"
    )
    application = create_app(settings.with_overrides(operator=OPERATOR, privacy_notice_dir=tmp_path))
    try:
        client = application.test_client()
        html = client.get("/privacy").get_data(as_text=True)
        english = client.get("/privacy?lang=en").get_data(as_text=True)
    finally:
        application.extensions["gateway"].engine.dispose()
    assert "<h1>我们的说明</h1>" in html and f"运营单位：{OPERATOR.name}。" in html
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    assert "Privacy notice" in english  # no en.md in the folder: the shipped English one


@pytest.mark.parametrize("path", ["/nope", "/graduate/nope", "/audit/nope", "/schemas/none.xsd", "/directory/x"])
def test_a_missing_page_is_a_styled_bilingual_404(client: FlaskClient, path: str) -> None:
    status, html = page(client, path)
    assert status == 404
    assert catalog("zh")["error.not_found.title"] in html and catalog("en")["error.not_found.title"] in html
    assert 'class="error-page"' in html and 'href="/"' in html
    assert "Werkzeug" not in html and "The requested URL was not found" not in html


def test_a_client_that_asks_for_json_gets_json(client: FlaskClient) -> None:
    response = client.get("/nope", headers={"Accept": "application/json"})
    assert response.status_code == 404 and response.get_json() == {"status": 404, "error": "Page not found"}


def test_get_soap_explains_the_endpoint_and_links_the_wsdl(client: FlaskClient) -> None:
    response = client.get("/soap")
    html = response.get_data(as_text=True)
    assert response.status_code == 405 and response.headers["Allow"] == "POST"
    assert catalog("zh")["soap.title"] in html and catalog("en")["soap.title"] in html
    assert 'href="/soap?wsdl"' in html
    assert client.get("/soap?wsdl").status_code == 200  # the WSDL itself is unchanged


def test_a_wrong_method_is_a_styled_405(client: FlaskClient) -> None:
    response = client.get("/graduate/sign-out")
    assert response.status_code == 405
    assert catalog("zh")["error.method_not_allowed.title"] in response.get_data(as_text=True)


def test_an_expired_form_says_so_and_links_back(client: FlaskClient) -> None:
    response = client.post("/staff/sign-in", data={"username": "x", "password": "y"})
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert catalog("zh")["error.csrf.text"] in html and 'href="/staff/sign-in"' in html


def test_too_many_attempts_says_how_long_to_wait_and_links_back(settings: Settings) -> None:
    application = create_app(settings.with_overrides(sign_in_rate_limit="2 per minute"))
    application.config.update(TESTING=True, WTF_CSRF_ENABLED=False)
    try:
        client = application.test_client()
        for _ in range(2):
            assert client.post("/staff/sign-in", data={"username": "x", "password": "y"}).status_code == 401
        response = client.post("/staff/sign-in", data={"username": "x", "password": "y"})
    finally:
        application.extensions["gateway"].engine.dispose()
    html = response.get_data(as_text=True)
    assert response.status_code == 429
    seconds = int(response.headers["Retry-After"])
    assert 1 <= seconds <= 60
    assert re.search(r"请在 \d+ 秒后再试", html), html
    assert re.search(r"try again in \d+ seconds", html)
    assert 'href="/staff/sign-in"' in html


def test_an_unexpected_error_is_a_styled_500_without_details(settings: Settings) -> None:
    application = create_app(settings)

    @application.get("/boom")
    def boom() -> str:
        raise RuntimeError("secret detail")

    try:
        response = application.test_client().get("/boom")
    finally:
        application.extensions["gateway"].engine.dispose()
    html = response.get_data(as_text=True)
    assert response.status_code == 500
    assert catalog("zh")["error.internal.title"] in html and "secret detail" not in html


def test_the_integration_guide_is_served_for_agencies(client: FlaskClient) -> None:
    status, html = page(client, "/docs/")
    assert status == 200 and "<h1>" in html and "WSDL" in html
    assert 'href="/docs/signing' in html  # the guide's links to the other documents lead to their pages
    assert client.get("/docs/operations").status_code == 404  # only the agencies' documents
