"""Fixtures for the auditor UI: apps with an auditor and an administrator, signed-in clients, and
one module-wide gateway that has accepted the domain's whole story (read-only tests share it)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gateway.sdk.signing import sign_envelope_bytes
from gateway.settings import Settings
from gateway.staff.models import Role
from gateway.staff.services import add_user
from gateway.store.db import connect, session_factory, transaction
from gateway.web.app import create_app
from tests.auditor.helpers import register_graduate_b, send_story
from tests.conftest import UNIVERSITY, credentials
from tests.web.helpers import csrf_token

PASSWORD = "auditor-password-1"


def staff_app(settings: Settings) -> Flask:
    """The gateway (system clock, so that freshly signed messages are accepted) with two staff accounts."""
    engine = connect(settings.database_url)
    with transaction(session_factory(engine)) as session:
        add_user(session, "ada", Role.AUDITOR, PASSWORD, datetime.now(UTC))
        add_user(session, "root.admin", Role.ADMINISTRATOR, PASSWORD, datetime.now(UTC))
    engine.dispose()
    app = create_app(settings)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def auditor_app(settings: Settings) -> Iterator[Flask]:
    app = staff_app(settings)
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


@pytest.fixture(scope="module")
def story_app(template_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """A gateway that accepted the story of graduate A and graduate B's registration (17 messages)."""
    home = tmp_path_factory.mktemp("story") / "home"
    shutil.copytree(template_home, home)
    settings = Settings.from_env({}, base_dir=home)

    def sign(envelope: bytes, as_: str = UNIVERSITY, **options: Any) -> bytes:
        found = credentials(settings.keys_dir, as_)
        return sign_envelope_bytes(envelope, found.key, found.certificate, **options)

    # Each test signs a fresh client in (one session each), more often than the sign-in limit allows
    # one client address (10 a minute): that limit has tests of its own (tests/staff).
    app = staff_app(settings.with_overrides(sign_in_rate_limit="1000 per minute"))
    client = app.test_client()
    send_story(client, sign)
    register_graduate_b(client, sign)
    yield app
    app.extensions["gateway"].engine.dispose()


@pytest.fixture
def story_auditor(story_app: Flask) -> FlaskClient:
    return signed_in(story_app, "ada")
