"""An agency keeps its directory entry current: the change in the public directory and the auditor UI.

The Chaoyang agency's system sends a signed ``DirectoryEntryUpdate`` with a new phone number to
`gateway serve` (the SDK, real HTTP); a member of the public finds the new number on /directory in
a real browser, and an auditor finds the change, with the old and the new number, on the agency's
page in the auditor UI, reached from the message's story.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from gateway.audit.entries import decode
from gateway.audit.models import AuditEntry
from gateway.sdk.client import GatewayClient
from gateway.settings import Settings
from gateway.store.db import connect, session_factory
from tests.conftest import AGENCY_CHAOYANG
from tests.domain.documents import directory_update
from tests.serving import add_staff_user, served_gateway

PASSWORD = "auditor-password-1"
OLD_PHONE, NEW_PHONE = "010-65090000", "010-65090123"
pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Served:
    base: str
    home: Path
    message_id: str


@pytest.fixture(scope="module")
def served(served_home: Path) -> Iterator[Served]:
    add_staff_user(served_home, "inspector", "auditor", PASSWORD)
    with served_gateway(served_home) as base:
        agency = GatewayClient.from_keys(base, AGENCY_CHAOYANG, served_home / "keys")
        sent = agency.send(directory_update(ContactPhone=NEW_PHONE), recipient=AGENCY_CHAOYANG)
        yield Served(base, served_home, sent.message_id)


def test_the_new_phone_number_is_in_the_public_directory(page: Any, served: Served) -> None:
    page.goto(f"{served.base}/directory")
    entry = page.locator("article", has=page.get_by_role("heading", name="北京市朝阳区人才服务中心"))
    assert NEW_PHONE in entry.inner_text() and OLD_PHONE not in entry.inner_text()
    assert entry.get_by_role("link", name=NEW_PHONE).get_attribute("href") == f"tel:{NEW_PHONE}"


def test_an_auditor_finds_the_change_on_the_agencys_page(page: Any, served: Served) -> None:
    page.goto(f"{served.base}/audit/")
    page.get_by_role("link", name="English").click()
    page.get_by_label("Username").fill("inspector")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{served.base}/audit/")
    page.get_by_role("link", name=served.message_id).click()
    page.wait_for_url("**/audit/messages/*")
    page.get_by_role("link", name=AGENCY_CHAOYANG).first.click()
    page.wait_for_url(f"**/audit/participants/{AGENCY_CHAOYANG}")
    assert "北京市朝阳区人才服务中心" in page.locator("h1").inner_text()
    row = page.locator("tr", has_text="contact_phone")
    assert row.count() == 1
    text = row.inner_text()
    assert OLD_PHONE in text and NEW_PHONE in text and AGENCY_CHAOYANG in text and "DirectoryEntryUpdate" in text
    assert "participant updated" in text
    assert served.message_id in text
    # The entry as it stands shows the new number.
    assert NEW_PHONE in page.locator("main").inner_text()


def test_the_audit_entry_names_the_old_and_the_new_value(served: Served) -> None:
    engine = connect(Settings.from_env({}, base_dir=served.home).database_url)
    try:
        with session_factory(engine)() as session:
            entries = [
                decode(e)
                for e in session.scalars(select(AuditEntry.entry).where(AuditEntry.kind == "participant.updated"))
            ]
    finally:
        engine.dispose()
    assert [(e["participant"], e["field"], e["old"], e["new"], e["message_id"]) for e in entries] == [
        (AGENCY_CHAOYANG, "contact_phone", OLD_PHONE, NEW_PHONE, served.message_id)
    ]
