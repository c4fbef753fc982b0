"""The portal on a clock the test can move, and graduates with filed registrations (through POST /soap)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gateway.clock import FixedClock
from gateway.settings import Settings
from gateway.web.app import create_app
from tests.conftest import Signer
from tests.graduates.helpers import LI_MING, Graduate, file_registration
from tests.web.helpers import csrf_token

PASSWORD = "portal password 1"


@pytest.fixture
def clock() -> FixedClock:
    # Now (signed SOAP messages carry fresh timestamps); tests step it forward for expiry.
    return FixedClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def app(settings: Settings, clock: FixedClock) -> Iterator[Flask]:
    """The conftest ``app`` on the test's clock (``client`` uses this one)."""
    application = create_app(settings, clock=clock)
    application.config["TESTING"] = True
    yield application
    application.extensions["gateway"].engine.dispose()


def activate(
    client: FlaskClient,
    graduate: Graduate = LI_MING,
    password: str = PASSWORD,
    changes: dict[str, str] | None = None,
    **fields: str,
) -> object:
    """POST the activation form for ``graduate`` (fields overridden by ``changes`` and ``fields``)."""
    data = {
        "identity_number": graduate.identity_number,
        "name": graduate.name,
        "verification_number": graduate.verification_number,
        "password": password,
        "password_confirm": password,
        "consent": "yes",
        **(changes or {}),
        **fields,
        "csrf_token": csrf_token(client, "/graduate/activate"),
    }
    return client.post("/graduate/activate", data=data)


def sign_in(client: FlaskClient, identity_number: str, password: str = PASSWORD, next_url: str = "") -> object:
    path = "/graduate/sign-in" + (f"?next={next_url}" if next_url else "")
    data = {"identity_number": identity_number, "password": password, "csrf_token": csrf_token(client, path)}
    return client.post(path, data=data)


@pytest.fixture
def graduate_client(app: Flask, client: FlaskClient, sign: Signer) -> FlaskClient:
    """Li Ming's registration filed, the account activated through the portal and signed in."""
    file_registration(client, sign, LI_MING)
    response = activate(client)
    assert response.status_code == 302, response.get_data(as_text=True)  # type: ignore[attr-defined]
    return client


def text(response: object) -> str:
    body: str = response.get_data(as_text=True)  # type: ignore[attr-defined]
    return body
