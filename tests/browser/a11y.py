"""axe-core in the browser tests: inject the pinned axe-core into a page, run it, and keep a screenshot.

axe-core is the npm package pinned in ``tests/browser/axe/package.json`` (``.ci/run`` installs it
with ``npm ci``; without it these checks skip, and fail under ``CI=true``). It is evaluated through
the DevTools protocol, which the pages' Content-Security-Policy does not govern, so the pages keep
their strict policy while they are checked.

Screenshots of the pages checked go to ``tests/browser/screenshots/`` (git-ignored) for a reviewer.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

from tests.conftest import require

AXE = Path(__file__).resolve().parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
# WCAG 2.1 A and AA, and axe's best practices; what fails the test is a serious or critical violation.
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
BLOCKING = ("serious", "critical")


@cache
def axe_source() -> str:
    require("axe-core (npm ci --prefix tests/browser/axe)", lambda: AXE.stat())
    return AXE.read_text(encoding="utf-8")


def violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(axe_source() + "\n;undefined")
    found: list[dict[str, Any]] = page.evaluate(
        "async (tags) => (await axe.run(document, {runOnly: {type: 'tag', values: tags}})).violations"
        ".map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(' '))}))",
        TAGS,
    )
    return [v for v in found if v["impact"] in BLOCKING]


def check(page: Any, name: str) -> None:
    """Assert that the page has no serious or critical axe violation; write its screenshot as ``name``."""
    found = violations(page)
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.png"), full_page=True)
    assert not found, (name, page.url, found)
