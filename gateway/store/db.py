"""Engines, sessions and migrations.

``connect(settings)`` builds the engine for ``settings.database_url``; ``migrate(engine)`` brings
the schema to the newest Alembic revision (idempotent). SQLite gets WAL mode and a busy timeout so
that several gunicorn threads and the delivery worker can share it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic is imported where it is used (a sixth of the command line's start-up): `--help` and the
# web app's import do not need it.

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def connect(database_url: str) -> Engine:
    """An engine for ``database_url`` with the connection settings the gateway relies on."""
    if database_url.startswith("sqlite"):
        engine = create_engine(database_url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        _serialise_transactions(engine)
        return engine
    if database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url.removeprefix("postgresql://")
    return create_engine(database_url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _serialise_transactions(engine: Engine) -> None:
    """One transaction at a time per process on SQLite.

    SQLite has one writer; threads that collide wait in its busy handler, which sleeps and retries
    and turned concurrent intake into second-long stalls. Waiting on a lock in the process instead
    hands the database over as soon as it is free. (Other processes still meet the busy handler.)
    """
    lock = threading.RLock()

    def acquire(_connection: Any) -> None:
        lock.acquire()

    def release(_connection: Any) -> None:
        lock.release()

    event.listen(engine, "begin", acquire)
    event.listen(engine, "commit", release)
    event.listen(engine, "rollback", release)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work is committed on success and rolled back on any exception."""
    with sessions() as session, session.begin():
        yield session


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def migrate(engine: Engine) -> str | None:
    """Upgrade the schema to the newest revision; returns the revision now in force."""
    from alembic import command

    command.upgrade(alembic_config(engine), "head")
    return current_revision(engine)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(engine: Engine) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def ping(engine: Engine) -> None:
    """Raise if the database cannot be reached."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def expire_held(session: Session, entity: type[Any], pk: object) -> None:
    """Expire the ``entity`` of primary key ``pk`` if ``session`` holds one.

    For a row just written by a Core statement, past the ORM: the next read of it in the
    transaction (which several messages may share) loads it again instead of the values from before.
    """
    held = session.identity_map.get(session.identity_key(entity, pk))
    if held is not None:
        session.expire(held)
