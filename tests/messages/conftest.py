"""Fixtures of the payload tests: a gateway on SQLite and again on PostgreSQL, and its command line."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result
from flask import Flask

from gateway.cli import main
from gateway.settings import Settings
from gateway.web.app import create_app


@pytest.fixture
def store_app(store_settings: Settings) -> Iterator[Flask]:
    application = create_app(store_settings)
    application.config["TESTING"] = True
    yield application
    application.extensions["gateway"].engine.dispose()


def run_cli(settings: Settings, *args: str, **env: str) -> Result:
    """``gateway ARGS`` against ``settings``' home and database, with extra ``GATEWAY_*`` variables."""
    environment = {
        "GATEWAY_DATA_DIR": str(settings.data_dir),
        "GATEWAY_KEYS_DIR": str(settings.keys_dir),
        "GATEWAY_DATABASE_URL": settings.database_url,
        **env,
    }
    return CliRunner().invoke(main, list(args), env=environment)
