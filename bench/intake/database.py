"""The benchmark's throw-away database: SQLite in the run's temporary directory, or a fresh schema
in the PostgreSQL database given, dropped after the run (as the test suite does)."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import text

from gateway.store.db import connect


@contextmanager
def scratch_database(data_dir: Path, postgres_url: str | None) -> Iterator[str]:
    """The database URL for this run; a PostgreSQL schema made for it is dropped afterwards."""
    if postgres_url is None:
        yield f"sqlite:///{data_dir / 'gateway.db'}"
        return
    schema = f"bench_intake_{secrets.token_hex(4)}"
    _execute(postgres_url, f'CREATE SCHEMA "{schema}"')
    try:
        separator = "&" if "?" in postgres_url else "?"
        yield f"{postgres_url}{separator}options={quote(f'-csearch_path={schema}', safe='')}"
    finally:
        _execute(postgres_url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def init_demo_home(work: Path, database_url: str, ttl_seconds: int, **settings: str) -> None:
    """A demo gateway's home under ``work`` (data and keys) on ``database_url``, for an in-process
    profile: its ``GATEWAY_*`` settings put in this process's environment (with ``settings``, e.g.
    ``PROMETHEUS_MULTIPROC_DIR``), then ``gateway init --demo``. The envelopes' Timestamps live
    ``ttl_seconds``: so long is the gateway told to accept them."""
    os.environ.update(
        GATEWAY_DATA_DIR=str(work / "data"),
        GATEWAY_KEYS_DIR=str(work / "keys"),
        GATEWAY_DATABASE_URL=database_url,
        GATEWAY_TIMESTAMP_MAX_AGE=str(ttl_seconds),
        **settings,
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run(
        [str(root / ".venv" / "bin" / "gateway"), "init", "--demo"], cwd=root, check=True, capture_output=True
    )


def _execute(url: str, statement: str) -> None:
    engine = connect(url)
    try:
        with engine.begin() as connection:
            connection.execute(text(statement))
    finally:
        engine.dispose()


def stored_messages(url: str) -> int:
    """How many messages the gateway has stored in the database at ``url``."""
    engine = connect(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(text("SELECT count(*) FROM messages")).scalar_one())
    finally:
        engine.dispose()


def named(url: str, application: str) -> str:
    """``url`` with ``application_name`` set on PostgreSQL (the lock sampler finds the gateway's
    sessions by it); SQLite URLs are returned as they are."""
    if not url.startswith("postgresql://"):
        return url
    return f"{url}{'&' if '?' in url else '?'}application_name={quote(application, safe='')}"


def backend_pids(url: str, application: str) -> set[int]:
    """The server process ids of the PostgreSQL sessions named ``application`` (none on SQLite)."""
    if not url.startswith("postgresql://"):
        return set()
    engine = connect(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT pid FROM pg_stat_activity WHERE application_name = :name"), {"name": application}
            )
            return {int(pid) for pid in rows.scalars()}
    finally:
        engine.dispose()
