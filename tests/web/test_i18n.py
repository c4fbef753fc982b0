"""The Chinese and English catalogs say the same things, and every text a template asks for exists."""

from __future__ import annotations

import re
from pathlib import Path

from flask.testing import FlaskClient

from gateway.web.i18n import LANGUAGES, catalog

TEMPLATES = Path(__file__).resolve().parents[2] / "gateway"
KEY = re.compile(r"""_\(\s*["']([a-z0-9_.]+)["']""")


def test_catalogs_have_the_same_keys() -> None:
    keys = {language: set(catalog(language)) for language in LANGUAGES}
    assert keys["zh"] == keys["en"], keys["zh"] ^ keys["en"]


def test_every_key_used_in_templates_and_code_exists() -> None:
    used: set[str] = set()
    for path in [*TEMPLATES.rglob("*.html"), *TEMPLATES.rglob("*.py")]:
        used |= set(KEY.findall(path.read_text(encoding="utf-8")))
    used |= {key for key in re.findall(r'translate\("([a-z0-9_.]+)"', _all_python())}
    missing = {key for key in used if key not in catalog("en") and "." in key and not key.endswith(".")}
    assert not missing


def _all_python() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in TEMPLATES.rglob("*.py"))


def test_language_from_query_cookie_and_browser(client: FlaskClient) -> None:
    assert "Staff sign-in" in client.get("/staff/sign-in?lang=en").get_data(as_text=True)
    assert "Staff sign-in" in client.get("/staff/sign-in").get_data(as_text=True)  # remembered in the cookie
    fresh = client.application.test_client()
    assert "工作人员登录" in fresh.get("/staff/sign-in").get_data(as_text=True)  # default Chinese
    english = fresh.get("/staff/sign-in", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert "Staff sign-in" in english.get_data(as_text=True)


def test_the_language_link_keeps_the_other_query_arguments(client: FlaskClient) -> None:
    page = client.get("/staff/sign-in?next=%2Fstaff%2F&lang=zh").get_data(as_text=True)
    assert 'href="?next=%2Fstaff%2F&amp;lang=en"' in page
