"""Fixtures for the auditor UI: an app with an auditor and an administrator, and signed-in clients."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gateway.settings import Settings
from gateway.staff.models import Role
from gateway.staff.services import add_user
from gateway.store.db import connect, session_factory, transaction
from gateway.web.app import create_app
from tests.web.helpers import csrf_token

PASSWORD = "auditor-password-1"


@pytest.fixture
def auditor_app(settings: Settings) -> Iterator[Flask]:
    """The gateway (system clock, so that freshly signed messages are accepted) with two staff accounts."""
    engine = connect(settings.database_url)
    with transaction(session_factory(engine)) as session:
        from datetime import UTC, datetime

        add_user(session, "ada", Role.AUDITOR, PASSWORD, datetime.now(UTC))
        add_user(session, "root.admin", Role.ADMINISTRATOR, PASSWORD, datetime.now(UTC))
    engine.dispose()
    app = create_app(settings)
    app.config["TESTING"] = True
    yield app
    app.extensions["gateway"].engine.dispose()


def signed_in(app: Flask, username: str) -> FlaskClient:
    client = app.test_client()
    token = csrf_token(client, "/staff/sign-in")
    response = client.post("/staff/sign-in", data={"username": username, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302, response.status_code
    return client


@pytest.fixture
def auditor(auditor_app: Flask) -> FlaskClient:
    return signed_in(auditor_app, "ada")


@pytest.fixture
def administrator(auditor_app: Flask) -> FlaskClient:
    return signed_in(auditor_app, "root.admin")
