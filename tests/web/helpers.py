"""Helpers for tests of the human-facing pages through Flask's test client."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(client: FlaskClient, path: str) -> str:
    """The CSRF token of the first form on the page at ``path``."""
    page = client.get(path)
    assert page.status_code == 200, page.status_code
    found = _TOKEN.search(page.get_data(as_text=True))
    assert found, f"no CSRF token in the form at {path}"
    return found.group(1)


def post_form(client: FlaskClient, path: str, data: dict[str, str], form_page: str | None = None) -> object:
    """POST ``data`` to ``path`` with the CSRF token of the form at ``form_page`` (default: ``path``)."""
    token = csrf_token(client, form_page or path)
    return client.post(path, data={**data, "csrf_token": token})
