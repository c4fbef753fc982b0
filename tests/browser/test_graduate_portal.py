"""The graduate portal in a real browser against ``gateway serve``, with a hukou office verifying over SOAP.

The university and the education department file Li Ming's registration through the SOAP endpoint
with the SDK's zeep client; Li Ming activates an account in chromium, grants the hukou office a
two-use authorisation; the office verifies with the short code read off the page (the real zeep
client, signed with its demo key) and gets the granted facts; Li Ming revokes the grant; a second
verification is refused; the access history shows the use and the refused attempt.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.sdk.client import GatewayClient, GatewayRefusal
from tests.conftest import EDUCATION_DEPARTMENT, HUKOU_OFFICE, UNIVERSITY
from tests.graduates.helpers import LI_MING, filing_document, registration_document
from tests.grants.helpers import verification_request
from tests.serving import served_gateway

PASSWORD = "browser password 1"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def portal(served_home: Path) -> Iterator[str]:
    with served_gateway(served_home) as base:
        yield base


def sdk(base: str, home: Path, participant: str) -> GatewayClient:
    return GatewayClient.from_keys(base, participant, home / "keys")


def test_activate_grant_verify_revoke_and_see_the_history(portal: str, served_home: Path, page: Any) -> None:
    sdk(portal, served_home, UNIVERSITY).send(registration_document(LI_MING), recipient=EDUCATION_DEPARTMENT)
    sdk(portal, served_home, EDUCATION_DEPARTMENT).send(filing_document(LI_MING), recipient=UNIVERSITY)

    # Activation (in Chinese, the default), which signs the graduate in.
    page.goto(f"{portal}/graduate/")
    assert page.url.startswith(f"{portal}/graduate/sign-in")
    page.locator("main").get_by_role("link", name="激活账户").click()
    page.get_by_label("居民身份证号码").fill(LI_MING.identity_number)
    page.get_by_label("姓名").fill(LI_MING.name)
    page.get_by_label("核验号").fill("HY2025BJ0000WRONG")
    page.get_by_label("设置密码").fill(PASSWORD)
    page.get_by_label("再次输入密码").fill(PASSWORD)
    page.get_by_label("我已阅读并同意上述个人信息保护说明").check()
    page.get_by_role("button", name="激活").click()
    alert = page.get_by_role("alert").inner_text()
    assert "没有与该身份证号码、姓名和核验号相符" in alert and "1101**********041X" in alert
    assert LI_MING.identity_number not in page.content()
    page.get_by_label("居民身份证号码").fill(LI_MING.identity_number)
    page.get_by_label("核验号").fill(LI_MING.verification_number)
    page.get_by_label("设置密码").fill(PASSWORD)
    page.get_by_label("再次输入密码").fill(PASSWORD)
    page.get_by_label("我已阅读并同意上述个人信息保护说明").check()
    page.get_by_role("button", name="激活").click()
    page.wait_for_url(re.compile(r".*/graduate/\?welcome=1$"))
    assert "李明，您好" in page.locator("h1").inner_text()

    # A grant for the hukou office: identity match and education, for settlement, two uses.
    page.locator("main").get_by_role("link", name="新建核验授权").click()
    page.get_by_label("核验单位").select_option(HUKOU_OFFICE)
    page.get_by_label("身份一致性").check()
    page.get_by_label("学历信息").check()
    page.get_by_label("落户").check()
    assert page.get_by_label("有效期（天）").input_value() == "7"
    assert page.get_by_label("可使用次数").input_value() == "1"
    page.get_by_label("可使用次数").fill("2")  # two uses: the second request is refused for the revocation alone
    page.get_by_role("button", name="创建授权").click()
    page.wait_for_url(re.compile(r".*/graduate/grants/[0-9a-f-]{36}$"))
    assert "授权已创建" in page.get_by_role("status").inner_text()
    short_code = page.locator("#short-code").inner_text().strip()
    token = page.locator("#token").input_value()
    assert re.fullmatch(r"[2-9A-Z]{4}-[2-9A-Z]{4}", short_code) and token.count(".") == 2
    assert page.get_by_role("img", name="授权令牌二维码，可在窗口出示").is_visible()
    page.get_by_role("button", name="复制令牌").click()
    page.get_by_role("button", name="已复制").wait_for(timeout=5000)  # the clipboard answers asynchronously

    # The hukou office verifies with the short code and gets exactly the granted facts.
    office = sdk(portal, served_home, HUKOU_OFFICE)
    answer = office.send(
        verification_request(short_code, facts=("identity_match", "education")), recipient=EDUCATION_DEPARTMENT
    )
    assert answer.verification is not None
    assert answer.verification.identity_match is True and answer.verification.education is not None
    assert answer.verification.destination is None and answer.verification.archive is None

    # Li Ming revokes the grant (after confirming); the next request with the token is refused.
    page.reload()
    assert "1 / 2" in page.locator("main").inner_text()  # one use left
    page.get_by_role("link", name="撤销…").click()
    page.get_by_role("button", name="确认撤销").click()
    assert "授权已撤销" in page.get_by_role("status").inner_text()
    with pytest.raises(GatewayRefusal) as refused:
        office.send(
            verification_request(token, facts=("identity_match",), request_id="VER-2026-000002"),
            recipient=EDUCATION_DEPARTMENT,
        )
    assert refused.value.code == "AUTHORISATION_REVOKED"

    # The access history: the use and the refused attempt, newest first, and the filing of the registration.
    page.get_by_role("navigation", name="毕业生服务").get_by_role("link", name="查询记录").click()
    history = page.locator("main").inner_text()
    office_name = "北京市公安局海淀分局"
    assert history.count(office_name) >= 2
    refused_at = history.index("AUTHORISATION_REVOKED")
    used_at = history.index("已核验")
    assert refused_at < used_at  # newest first
    assert "备案" in history
    assert LI_MING.identity_number not in page.content()

    # The same page in English.
    page.get_by_role("link", name="English").click()
    assert "Access history" in page.locator("h1").inner_text()
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r".*/graduate/sign-in\?signed_out=1$"))
    assert "You are signed out" in page.get_by_role("status").inner_text()
