"""The portal's whole flow on SQLite and on the real PostgreSQL: activate, grant, verified, revoke, refused, history."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gateway.clock import FixedClock
from gateway.settings import Settings
from gateway.web.app import create_app
from tests.conftest import Signer
from tests.graduates.helpers import LI_MING, file_registration
from tests.grants.helpers import ask, verification_request
from tests.portal.conftest import activate, text
from tests.portal.test_grants import created
from tests.portal.test_history import cards, token_of
from tests.web.helpers import csrf_token


@pytest.fixture
def store_app(store_settings: Settings, clock: FixedClock) -> Iterator[Flask]:
    application = create_app(store_settings, clock=clock)
    application.config["TESTING"] = True
    yield application
    application.extensions["gateway"].engine.dispose()


def test_grant_use_revocation_and_history(store_app: Flask, sign: Signer) -> None:
    agency: FlaskClient = store_app.test_client()  # the SOAP side
    file_registration(agency, sign, LI_MING)
    graduate = store_app.test_client()
    assert activate(graduate).status_code == 302  # type: ignore[attr-defined]
    grant_id = created(graduate, max_uses="5")
    token = token_of(graduate, grant_id)
    answer = ask(agency, sign, verification_request(token))
    assert answer.fault is None, answer.text
    graduate.post(f"/graduate/grants/{grant_id}/revoke", data={"csrf_token": csrf_token(graduate, "/graduate/")})
    assert "已撤销" in text(graduate.get(f"/graduate/grants/{grant_id}"))
    assert ask(agency, sign, verification_request(token, request_id="VER-2")).fault == "AUTHORISATION_REVOKED"
    found = cards(text(graduate.get(f"/graduate/history?grant={grant_id}")))
    outcomes = [re.search(r'data-outcome="(\w+)"', card).group(1) for card in found]  # type: ignore[union-attr]
    assert outcomes == ["refused", "used"]
    assert "您已撤销或暂停该授权" in found[0] and "4 / 5" in text(graduate.get("/graduate/grants/"))
