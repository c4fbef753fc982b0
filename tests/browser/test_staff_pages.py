"""Staff sign-in in a real browser: the form, a refusal, the language switch, sign-out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.serving import add_staff_user, served_gateway

PASSWORD = "administrator-pw-1"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def staff_gateway(served_home: Path) -> Iterator[str]:
    add_staff_user(served_home, "root.admin", "administrator", PASSWORD)
    with served_gateway(served_home) as base:
        yield base


def test_administrator_signs_in_switches_language_and_signs_out(staff_gateway: str, page: Any) -> None:
    page.goto(f"{staff_gateway}/staff/sign-in")
    assert page.locator("h1").inner_text() == "工作人员登录"
    page.get_by_label("用户名").fill("root.admin")
    page.get_by_label("密码").fill("not-the-password")
    page.get_by_role("button", name="登录").click()
    assert "用户名或密码不正确" in page.get_by_role("alert").inner_text()

    page.get_by_role("link", name="English").click()
    assert page.locator("h1").inner_text() == "Staff sign-in"
    page.get_by_label("Username").fill("root.admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{staff_gateway}/staff/")
    assert "root.admin" in page.locator("main").inner_text()

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{staff_gateway}/staff/sign-in?signed_out=1")
    assert "You are signed out" in page.get_by_role("status").inner_text()
    page.goto(f"{staff_gateway}/staff/")
    assert page.url.startswith(f"{staff_gateway}/staff/sign-in")
