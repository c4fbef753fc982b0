"""Fixtures of the mailbox tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from gateway.settings import Settings
from gateway.web.app import create_app


@pytest.fixture
def anchors(settings: Settings) -> tuple[Path, ...]:
    return (settings.keys_dir / "ca" / "ca.cert.pem",)


@pytest.fixture
def store_app(store_settings: Settings) -> Iterator[Flask]:
    """A gateway app on SQLite, and again on the real PostgreSQL."""
    application = create_app(store_settings)
    application.config["TESTING"] = True
    yield application
    application.extensions["gateway"].engine.dispose()
