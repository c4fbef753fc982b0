"""Every page passes axe-core with no serious or critical violation, in Chinese and English, on a desktop
and on a phone, and works from the keyboard with a visible focus (issue 17, item 6).

The gateway is served with a graduate whose paperwork is under way (registration rejected then
filed, an archive in transit, an open offer, a grant used once), an auditor and an administrator,
so that every page shows its real content. Each page checked is also written as a screenshot to
``tests/browser/screenshots/`` (git-ignored).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.clock import BEIJING
from gateway.sdk.client import GatewayClient
from tests.browser.a11y import check
from tests.conftest import AGENCY_CHAOYANG, EDUCATION_DEPARTMENT, HUKOU_OFFICE, PRIVATE_EMPLOYER, UNIVERSITY, example
from tests.domain.helpers import replace_text
from tests.graduates.helpers import LI_MING, filing_document, registration_document
from tests.grants.helpers import verification_request
from tests.serving import add_staff_user, served_gateway

PASSWORD = "browser password 1"
STAFF_PASSWORD = "staff-password-12"
pytestmark = pytest.mark.slow
SIZES = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


@dataclass(frozen=True)
class Served:
    base: str
    grant_page: str
    message_page: str
    offer_page: str
    state: dict[str, Any]  # the graduate's signed-in browser state (cookies)


def _sdk(base: str, home: Path, participant: str) -> GatewayClient:
    return GatewayClient.from_keys(base, participant, home / "keys")


def _season(base: str, home: Path) -> None:
    """Li Ming's paperwork: rejected, corrected and filed; the archive dispatched; an open offer."""
    university, department = _sdk(base, home, UNIVERSITY), _sdk(base, home, EDUCATION_DEPARTMENT)
    first = replace_text(registration_document(LI_MING), "reg:RegistrationId", "REG-2025-000120")
    university.send(first, recipient=EDUCATION_DEPARTMENT)
    department.send(example("registration-rejected"), recipient=UNIVERSITY)
    university.send(registration_document(LI_MING), recipient=EDUCATION_DEPARTMENT)
    department.send(filing_document(LI_MING), recipient=UNIVERSITY)
    _sdk(base, home, AGENCY_CHAOYANG).send(example("archive-transfer-request"), recipient=UNIVERSITY)
    university.send(example("archive-transfer-manifest"), recipient=AGENCY_CHAOYANG)
    today = datetime.now(BEIJING).date()
    offer = replace_text(example("agreement-offer"), "agr:ValidFrom", (today - timedelta(days=1)).isoformat())
    offer = replace_text(offer, "agr:ValidUntil", (today + timedelta(days=20)).isoformat())
    _sdk(base, home, PRIVATE_EMPLOYER).send(offer, recipient=UNIVERSITY)


def _activate(page: Any, base: str) -> None:
    page.goto(f"{base}/graduate/activate")
    page.locator("#identity_number").fill(LI_MING.identity_number)
    page.locator("#name").fill(LI_MING.name)
    page.locator("#verification_number").fill(LI_MING.verification_number)
    page.locator("#password").fill(PASSWORD)
    page.locator("#password_confirm").fill(PASSWORD)
    page.locator("#consent").check()
    page.locator("form.panel button[type=submit]").click()
    page.wait_for_url(re.compile(r".*/graduate/\?welcome=1$"))


@pytest.fixture(scope="module")
def served(served_home: Path, browser: Any) -> Iterator[Served]:
    add_staff_user(served_home, "inspector", "auditor", STAFF_PASSWORD)
    add_staff_user(served_home, "root.admin", "administrator", STAFF_PASSWORD)
    # Every test here signs in or sends a form with errors, well beyond the 10 sign-in POSTs a minute allowed.
    with served_gateway(served_home, {"GATEWAY_SIGN_IN_RATE_LIMIT": "1000 per minute"}) as base:
        _season(base, served_home)
        context = browser.new_context(locale="zh-CN")
        page = context.new_page()
        _activate(page, base)
        page.goto(f"{base}/graduate/grants/new")
        page.locator("#verifier").select_option(HUKOU_OFFICE)
        page.locator("input[name=facts][value=identity_match]").check()
        page.locator("input[name=purpose][value=settlement]").check()
        page.locator("#max_uses").fill("3")
        page.locator("form.panel button[type=submit]").click()
        page.wait_for_url(re.compile(r".*/graduate/grants/[0-9a-f-]{36}$"))
        grant_page = page.url
        token = page.locator("#token").input_value()
        _sdk(base, served_home, HUKOU_OFFICE).send(
            verification_request(token, facts=("identity_match",)), recipient=EDUCATION_DEPARTMENT
        )
        page.goto(f"{base}/graduate/offers")
        offer_page = base + str(page.locator("a.button").first.get_attribute("href"))
        state = context.storage_state()
        context.close()
        yield Served(base, grant_page, f"{base}/audit/messages/1", offer_page, state)


def _context(browser: Any, served: Served, size: str, language: str, signed_in: bool) -> Any:
    state = served.state if signed_in else None
    context = browser.new_context(locale="zh-CN", viewport=SIZES[size], storage_state=state)
    context.set_default_timeout(15_000)
    return context


PUBLIC = ("/", "/privacy", "/directory", "/docs/", "/soap", "/nope", "/graduate/sign-in", "/graduate/activate")
GRADUATE = (
    "/graduate/",
    "/graduate/registration",
    "/graduate/archive",
    "/graduate/notices",
    "/graduate/account",
    "/graduate/grants/",
    "/graduate/grants/new",
    "/graduate/history",
    "/graduate/offers",
)


@pytest.mark.parametrize("language", ["zh", "en"])
@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_public_and_graduate_pages_pass_axe(browser: Any, served: Served, size: str, language: str) -> None:
    context = _context(browser, served, size, language, signed_in=True)
    try:
        page = context.new_page()
        extra = (served.grant_page.removeprefix(served.base), served.grant_page.removeprefix(served.base) + "/revoke")
        extra += (served.offer_page.removeprefix(served.base),)
        for path in (*PUBLIC, *GRADUATE, *extra):
            page.goto(f"{served.base}{path}{'&' if '?' in path else '?'}lang={language}")
            check(page, f"{size}-{language}-{path.strip('/').replace('/', '-') or 'home'}")
            overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, (path, size, overflow)
        # Forms with every error shown: still accessible.
        page.goto(f"{served.base}/graduate/grants/new")
        page.locator("form.panel button[type=submit]").click()
        page.locator("#form-errors").wait_for()
        check(page, f"{size}-{language}-grant-form-errors")
    finally:
        context.close()


@pytest.mark.parametrize("language", ["zh", "en"])
@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_the_signed_out_forms_with_errors_pass_axe(browser: Any, served: Served, size: str, language: str) -> None:
    context = _context(browser, served, size, language, signed_in=False)
    try:
        page = context.new_page()
        page.goto(f"{served.base}/graduate/activate?lang={language}")
        page.locator("form.panel button[type=submit]").click()
        page.locator("#form-errors").wait_for()
        assert page.locator("p.field-error").count() == 5  # every field at once (the name stays empty too)
        check(page, f"{size}-{language}-activation-errors")
        page.goto(f"{served.base}/staff/sign-in?lang={language}")
        page.locator("input[name=username]").fill("nobody")
        page.locator("input[name=password]").fill("wrong password")
        page.locator("form.panel button[type=submit]").click()
        page.locator("#sign-in-error").wait_for()
        check(page, f"{size}-{language}-staff-sign-in-refused")
    finally:
        context.close()


@pytest.mark.parametrize("language", ["zh", "en"])
@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_auditor_and_administrator_pages_pass_axe(browser: Any, served: Served, size: str, language: str) -> None:
    context = _context(browser, served, size, language, signed_in=False)
    try:
        page = context.new_page()
        _staff_sign_in(page, served, "inspector", language)
        for path in ("/audit/", "/audit/messages/1", "/audit/integrity", "/audit/charts", "/audit/archives/overdue"):
            page.goto(f"{served.base}{path}")
            check(page, f"{size}-{language}-{path.strip('/').replace('/', '-')}")
        page.locator("header.band, nav.sitenav").first.wait_for()
        page.get_by_role("button", name=re.compile("退出登录|Sign out")).click()
        _staff_sign_in(page, served, "root.admin", language)
        check(page, f"{size}-{language}-staff-home")
    finally:
        context.close()


def _staff_sign_in(page: Any, served: Served, username: str, language: str) -> None:
    page.goto(f"{served.base}/staff/sign-in?lang={language}")
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password]").fill(STAFF_PASSWORD)
    page.locator("form.panel button[type=submit]").click()
    page.wait_for_url(re.compile(r".*/(audit|staff)/$"))


def _focused(page: Any) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(
        """() => { const e = document.activeElement; const s = getComputedStyle(e);
        return {tag: e.tagName, text: (e.textContent || '').trim().slice(0, 40), id: e.id,
                outline: s.outlineStyle, width: parseFloat(s.outlineWidth)}; }"""
    )
    return result


def test_the_portal_works_from_the_keyboard_with_a_visible_focus(browser: Any, served: Served) -> None:
    context = _context(browser, served, "desktop", "zh", signed_in=False)
    try:
        page = context.new_page()
        page.goto(f"{served.base}/graduate/sign-in")
        page.keyboard.press("Tab")
        skip = _focused(page)
        assert skip["tag"] == "A" and skip["text"] == "跳到主要内容"
        assert skip["outline"] != "none" and skip["width"] >= 2  # the focus is visible
        page.keyboard.press("Enter")  # the skip link leads to the content
        for _ in range(12):  # Tab on to the identity number field
            page.keyboard.press("Tab")
            if _focused(page)["tag"] == "INPUT":
                break
        field = _focused(page)
        assert field["tag"] == "INPUT" and field["outline"] != "none"
        page.keyboard.type(LI_MING.identity_number)
        page.keyboard.press("Tab")
        page.keyboard.type(PASSWORD)
        page.keyboard.press("Enter")  # sends the form
        page.wait_for_url(f"{served.base}/graduate/")
        page.goto(served.grant_page)
        page.locator("#token").focus()
        page.keyboard.press("Tab")
        copy = _focused(page)
        assert copy["tag"] == "BUTTON" and copy["text"] == "复制令牌" and copy["outline"] != "none"
        button = page.locator("button.copy").bounding_box()
        hint = page.locator("#token-hint").bounding_box()
        assert button["y"] + button["height"] <= hint["y"]  # the button no longer covers its hint
    finally:
        context.close()


def test_the_check_finds_what_axe_finds(page: Any) -> None:
    """A page with an image without a text and a field without a label does not pass: the check can fail."""
    from tests.browser.a11y import violations

    page.set_content('<html lang="en"><title>t</title><main><img src="x.png"><input name="q"></main></html>')
    assert {"image-alt", "label"} <= {v["id"] for v in violations(page)}
