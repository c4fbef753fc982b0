"""Shared fixtures.

Each test gets its own gateway home (data and keys) copied from one initialised template, so
keys are generated once per test session. Tests that need PostgreSQL or Redis use the real servers
on 127.0.0.1; without them they skip with the reason, except under CI=true, where they fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from gateway.bootstrap import demo_participant_inputs, initialise
from gateway.clock import SystemClock
from gateway.pki.keystore import PrivateKey, load_private_key
from gateway.registry.services import add_participant, register_certificate
from gateway.sdk.envelope import wrap
from gateway.sdk.signing import sign_envelope_bytes
from gateway.settings import PROJECT_ROOT, Settings
from gateway.store.db import connect, migrate, session_factory, transaction
from gateway.web.app import create_app

EXAMPLES = PROJECT_ROOT / "examples"
POSTGRES_URL = os.environ.get("GATEWAY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

UNIVERSITY = "12110108400000008J"
EDUCATION_DEPARTMENT = "11110000000000001R"
AGENCY_CHAOYANG = "12110105400000002L"
AGENCY_BEIJING = "12110000400000003A"
AGENCY_PUDONG = "12310115400000004P"
SOE_EMPLOYER = "91110102100000005B"
PRIVATE_EMPLOYER = "91110108500000006J"
HUKOU_OFFICE = "111101080000000075"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require(service: str, check: Callable[[], object]) -> None:
    """Skip (or, under CI=true, fail) when ``service`` cannot be reached."""
    try:
        check()
    except Exception as exc:
        reason = f"{service} is not reachable ({type(exc).__name__}: {exc})"
        if in_ci():
            pytest.fail(f"{reason}; CI must have it")
        pytest.skip(reason)


def receipt_bytes(answer: bytes) -> bytes:
    """The ``gw:Receipt`` of a SOAP answer, byte for byte as the gateway signed and stored it (the
    answer's own WS-Security header is new with every response)."""
    start = answer.index(b"<gw:Receipt")
    end = answer.index(b"</gw:Receipt>") + len(b"</gw:Receipt>")
    return answer[start:end]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def template_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An initialised gateway home (SQLite database, dev PKI, demo participants), made once."""
    home = tmp_path_factory.mktemp("template")
    settings = Settings.from_env({}, base_dir=home)
    initialise(settings, SystemClock(), demo=True)
    return home


@pytest.fixture
def home(template_home: Path, tmp_path: Path) -> Path:
    target = tmp_path / "home"
    shutil.copytree(template_home, target)
    return target


@pytest.fixture(scope="module")
def served_home(template_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the template home for one test module's served gateway."""
    target = tmp_path_factory.mktemp("served") / "home"
    shutil.copytree(template_home, target)
    return target


@pytest.fixture(scope="module")
def gateway_url(served_home: Path) -> Iterator[str]:
    """`gateway serve` on ``served_home`` for the whole module; its base URL."""
    from tests.serving import served_gateway  # tests.serving imports this module

    with served_gateway(served_home) as base:
        yield base


@pytest.fixture
def settings(home: Path) -> Settings:
    return Settings.from_env({}, base_dir=home)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped after the test."""
    admin = create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://"))
    require("PostgreSQL", lambda: admin.connect().close())
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def migrated(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on an empty store at the newest revision: SQLite, then a fresh PostgreSQL schema."""
    url = f"sqlite:///{tmp_path / 'store.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    engine = connect(url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """The test's settings on SQLite, and again on the real PostgreSQL, with demo participants."""
    if request.param == "sqlite":
        return settings
    url = request.getfixturevalue("postgres_url")
    pg_settings = settings.with_overrides(database_url=url)
    engine = connect(url)
    migrate(engine)
    with transaction(session_factory(engine)) as session:
        for data in demo_participant_inputs():
            add_participant(session, data, datetime.now(UTC))
            pem = (settings.keys_dir / "participants" / data.id / "cert.pem").read_bytes()
            register_certificate(session, data.id, pem, datetime.now(UTC))
    engine.dispose()
    return pg_settings


@pytest.fixture
def session(store_settings: Settings) -> Iterator[Session]:
    """A session in a transaction on ``store_settings``' database (SQLite, then PostgreSQL)."""
    engine = connect(store_settings.database_url)
    with transaction(session_factory(engine)) as session:
        yield session
    engine.dispose()


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    application = create_app(settings)
    application.config["TESTING"] = True
    yield application
    application.extensions["gateway"].engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def example(name: str) -> bytes:
    return (EXAMPLES / f"{name}.xml").read_bytes()


@dataclass(frozen=True)
class Credentials:
    key: PrivateKey
    certificate: x509.Certificate


def credentials(keys_dir: Path, participant_id: str) -> Credentials:
    folder = keys_dir / "participants" / participant_id
    return Credentials(
        load_private_key(folder / "key.pem"), x509.load_pem_x509_certificate((folder / "cert.pem").read_bytes())
    )


Signer = Callable[..., bytes]


@pytest.fixture
def sign(settings: Settings) -> Signer:
    """``sign(envelope, as_=UNIVERSITY, **options)``: the envelope signed with that participant's demo key."""

    def signed(envelope: bytes, as_: str = UNIVERSITY, **options: Any) -> bytes:
        found = credentials(settings.keys_dir, as_)
        return sign_envelope_bytes(envelope, found.key, found.certificate, **options)

    return signed


@pytest.fixture
def signed_message(sign: Signer) -> Callable[..., bytes]:
    """``signed_message(example_name, service, sender=..., recipient=..., **routing)``: wrapped and signed."""

    def build(name: str, service: str, sender: str = UNIVERSITY, **routing: Any) -> bytes:
        if "role" not in routing:
            routing.setdefault("recipient", EDUCATION_DEPARTMENT)
        return sign(wrap(example(name), sender=sender, service=service, **routing), as_=sender)

    return build
