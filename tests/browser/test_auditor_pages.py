"""The auditor UI in a real browser, against `gateway serve` with messages sent by the zeep-based SDK.

An auditor (made with `gateway users add --role auditor`) signs in, finds a graduate's messages by
identity number, opens a message's story, verifies the log, reads the charts and the overdue
archives, on a desktop and on a phone-sized screen.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.clock import BEIJING
from gateway.sdk.client import GatewayClient, GatewayRefusal
from tests.auditor.helpers import GRADUATE_A, GRADUATE_B
from tests.conftest import AGENCY_CHAOYANG, EDUCATION_DEPARTMENT, UNIVERSITY, example
from tests.domain.helpers import replace_text
from tests.serving import add_staff_user, served_gateway

PASSWORD = "auditor-password-1"
pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Served:
    base: str
    home: Path
    about_a: list[str]  # message ids
    about_b: list[str]


def _client(base: str, home: Path, participant: str) -> GatewayClient:
    return GatewayClient.from_keys(base, participant, home / "keys")


@pytest.fixture(scope="module")
def served(served_home: Path) -> Iterator[Served]:
    add_staff_user(served_home, "inspector", "auditor", PASSWORD)
    with served_gateway(served_home) as base:
        university = _client(base, served_home, UNIVERSITY)
        department = _client(base, served_home, EDUCATION_DEPARTMENT)
        agency = _client(base, served_home, AGENCY_CHAOYANG)
        about_a = [
            university.send(example("destination-registration"), recipient=EDUCATION_DEPARTMENT).message_id,
            department.send(example("registration-filed"), recipient=UNIVERSITY).message_id,
            agency.send(example("archive-transfer-request"), recipient=UNIVERSITY).message_id,
        ]
        other = replace_text(example("destination-registration"), "c:IdentityNumber", GRADUATE_B)
        other = replace_text(other, "reg:RegistrationId", "REG-2025-000999")
        about_b = [university.send(other, recipient=EDUCATION_DEPARTMENT).message_id]
        with pytest.raises(GatewayRefusal):  # a refusal for the charts: filing a registration never sent
            department.send(
                replace_text(example("registration-filed"), "reg:RegistrationId", "REG-2025-404404"),
                recipient=UNIVERSITY,
            )
        yield Served(base, served_home, about_a, about_b)


def sign_in(page: Any, served: Served) -> None:
    page.goto(f"{served.base}/audit/")
    assert "/staff/sign-in" in page.url
    page.get_by_role("link", name="English").click()
    page.get_by_label("Username").fill("inspector")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{served.base}/audit/")


def listed(page: Any) -> list[str]:
    return [link.inner_text() for link in page.locator("main table a.mono").all()]


def test_an_auditor_searches_reads_a_story_verifies_and_reads_charts(page: Any, served: Served) -> None:
    sign_in(page, served)
    assert set(served.about_a + served.about_b) <= set(listed(page))  # the latest messages, unfiltered

    page.get_by_label("Graduate's identity number").fill(GRADUATE_A)
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**/audit/?graduate=*")
    assert GRADUATE_A not in page.url
    assert sorted(listed(page)) == sorted(served.about_a)
    assert GRADUATE_A not in page.content()
    assert "REG-2025-000123" in page.locator("main").inner_text()

    page.get_by_role("link", name=served.about_a[0]).click()
    page.wait_for_url("**/audit/messages/*")
    assert page.locator("h1").inner_text() == f"Message {served.about_a[0]}"
    assert "The gateway's signed receipt of acceptance" in page.locator("main").inner_text()
    assert "message accepted" in page.locator("main").inner_text()

    page.get_by_role("link", name="Log integrity").click()
    page.get_by_role("button", name="Verify the whole log now").click()
    page.get_by_text("Verified OK").wait_for(timeout=30_000)  # the page reloads itself while it runs
    assert "inspector" in page.locator("main").inner_text()

    page.get_by_role("link", name="Charts").click()
    page.wait_for_url("**/audit/charts*")
    page.locator("figure.chart svg[role=img]").nth(3).wait_for()  # the page has loaded: count what it drew
    assert page.locator("figure.chart svg[role=img]").count() == 4
    accepted = page.locator("figure.chart").first
    assert "Destination registration (2)" in accepted.inner_text()
    assert page.locator("svg rect title").first.text_content()
    refused = page.locator("section", has=page.get_by_role("heading", name="Messages refused (by fault code)"))
    assert "REGISTRATION_UNKNOWN (1)" in refused.inner_text()

    later = (datetime.now(BEIJING) + timedelta(days=20)).date()
    page.get_by_role("link", name="Overdue archives").click()
    page.get_by_label("Judged on").fill(later.isoformat())
    page.get_by_role("button", name="Show").click()
    table = page.locator("main table").inner_text()
    assert "ZD11000020250001234" in table and "dispatch overdue" in table

    served_log = (served.home / "serve.log").read_text(errors="replace")
    assert '"path":"/audit/"' in served_log  # the request log saw the search (no query string), and not the number
    assert GRADUATE_A not in served_log


def test_the_pages_fit_a_phone(page: Any, served: Served) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, served)
    for path in ("/audit/", f"/audit/?message_id={served.about_a[0]}", "/audit/integrity", "/audit/charts"):
        page.goto(f"{served.base}{path}")
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, (path, overflow)
    page.goto(f"{served.base}/audit/?message_id={served.about_a[0]}")
    page.get_by_role("link", name=served.about_a[0]).click()
    page.wait_for_load_state("load")  # the story page and its stylesheet, not the list it replaces
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, ("story", overflow)
