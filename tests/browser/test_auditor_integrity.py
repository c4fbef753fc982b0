"""The integrity page in a real browser, against `gateway serve`: it remembers the checkpoint it showed
the auditor, and after an insider shortens the log in the database it warns, on a desktop and a phone."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.audit.log import size as log_size
from gateway.settings import Settings
from tests.audit.test_anchors import Log
from tests.serving import add_staff_user, served_gateway

PASSWORD = "auditor-password-1"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(served_home: Path) -> Iterator[str]:
    add_staff_user(served_home, "watcher", "auditor", PASSWORD)
    with served_gateway(served_home) as base:
        yield base


def open_integrity(page: Any, base: str) -> None:
    page.goto(f"{base}/audit/integrity?lang=en")
    if "/staff/sign-in" in page.url:
        page.get_by_label("Username").fill("watcher")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{base}/audit/integrity*")


def wait_for_text(page: Any, base: str, wanted: str) -> str:
    """Reload the page until ``wanted`` is on it (the served sequencer signs every few seconds)."""
    for _ in range(60):
        open_integrity(page, base)
        text: str = page.locator("main").inner_text()
        if wanted in text:
            return text
        page.wait_for_timeout(500)
    raise AssertionError(f"{wanted!r} never appeared: {text}")


def all_signed(log: Log) -> int:
    """Wait until the served sequencer has integrated every entry; the log's size."""
    for _ in range(60):
        with log.sessions() as session:
            entries, integrated = log_size(session)
        if entries == integrated:
            return integrated
        time.sleep(0.5)
    raise AssertionError(f"the sequencer did not catch up: {integrated} of {entries}")


def test_the_page_warns_an_auditor_when_the_log_was_shortened(page: Any, served: str, served_home: Path) -> None:
    wait_for_text(page, served, "The log holds to the newest checkpoint published outside the database")
    page.get_by_role("button", name="Verify the whole log now").click()  # records an entry: the log grows
    page.get_by_text("Verified OK").wait_for(timeout=30_000)
    log = Log(Settings.from_env({}, base_dir=served_home))
    try:
        size = all_signed(log)  # the verification's own entry included
        wait_for_text(page, served, f"The log holds to the checkpoint this page showed you last ({size} entries)")
        log.shorten_to(size - 1)  # an insider deletes the newest entry with its checkpoint
    finally:
        log.close()
    open_integrity(page, served)
    alerts = page.get_by_role("alert")
    assert alerts.count() == 2
    assert alerts.nth(1).inner_text() == (
        "Warning: the log no longer holds to the checkpoint this page showed you last. The log's tree holds "
        f"{size - 1} entries, fewer than the {size} of the checkpoint you saw last: entries at the end were deleted"
    )
    assert alerts.first.is_visible() and alerts.first.bounding_box()["y"] < 400  # at the top, not below the fold
    page.set_viewport_size({"width": 390, "height": 844})
    open_integrity(page, served)
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0
