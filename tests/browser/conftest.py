"""Browser tests: Playwright driving Debian's headless chromium against a gateway the test starts.

Chromium comes from Debian's package (``.ci/run`` installs it); Playwright's own browser download is
neither possible here nor needed. Without ``/usr/bin/chromium`` (or ``GATEWAY_TEST_CHROMIUM``) the
tests skip with the reason, and under ``CI=true`` they fail instead (``tests.conftest.require``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require

CHROMIUM = os.environ.get("GATEWAY_TEST_CHROMIUM", "/usr/bin/chromium")
# Root needs --no-sandbox; the rest keep a headless chromium from phoning home or stalling.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _chromium_present() -> None:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        raise FileNotFoundError(f"{CHROMIUM} (Debian package chromium; .ci/run installs it)")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """A headless chromium for the module (Playwright's sync API)."""
    require("chromium", _chromium_present)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    """A fresh browser context (its own cookies) and page for each test; 10 s timeouts."""
    context = browser.new_context(locale="zh-CN")  # type: ignore[attr-defined]
    context.set_default_timeout(10_000)
    try:
        yield context.new_page()
    finally:
        context.close()
