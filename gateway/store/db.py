"""Engines, sessions and migrations.

``connect(settings)`` builds the engine for ``settings.database_url``; ``migrate(engine)`` brings
the schema to the newest Alembic revision (idempotent). SQLite gets WAL mode and a busy timeout so
that several gunicorn threads and the delivery worker can share it.

On PostgreSQL the pool checks a connection before lending it only when it has lain unused for
:data:`PING_AFTER_IDLE_SECONDS` (SQLAlchemy's ``pool_pre_ping`` checks every one, a round trip
and about 40 - 60 us of the borrowing thread's CPU a checkout, which every group-commit batch of
the intake and every claim of a delivery paid: bench/intake/README.md, eleventh pass). The pool
lends the connection returned last first (LIFO), so that under load the same few connections
go round and are never idle long, and a spare one that has waited is checked before use. A
connection that broke within the second (the database restarted under load) fails its statement
with a disconnection error, and SQLAlchemy then replaces every connection of the pool older than
that moment; the intake's group commit runs such a batch again on a new connection, once
(``gateway.intake.writer``).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
import urllib.parse
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic is imported where it is used (a sixth of the command line's start-up): `--help` and the
# web app's import do not need it.

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent / "migrations"

# A pooled PostgreSQL connection unused for this long is checked (a ping) before it is lent again.
PING_AFTER_IDLE_SECONDS = 1.0
_RETURNED_AT = "gateway.returned_at"  # the connection record's info: time.monotonic() at its return


def connect(database_url: str) -> Engine:
    """An engine for ``database_url`` with the connection settings the gateway relies on."""
    if database_url.startswith("sqlite"):
        engine = create_engine(database_url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        _serialise_transactions(engine)
        return engine
    if database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url.removeprefix("postgresql://")
    engine = create_engine(database_url, pool_size=10, max_overflow=10, pool_use_lifo=True)
    _ping_after_idle(engine)
    return engine


def _ping_after_idle(engine: Engine) -> None:
    """Check a pooled connection at its checkout only if it was returned :data:`PING_AFTER_IDLE_SECONDS`
    ago or more (the module's docstring). One found broken is replaced, and the pool's older ones
    with it, as ``pool_pre_ping`` does: the pool tries the checkout again with a new connection when
    a checkout listener raises ``InvalidatePoolError``."""
    dialect = engine.dialect

    def returned(_dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    def lent(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned_at = record.info.get(_RETURNED_AT)
        if returned_at is None or time.monotonic() - returned_at < PING_AFTER_IDLE_SECONDS:
            return  # just opened, or in use a moment ago
        try:
            alive = dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            if not dialect.is_disconnect(exc, dbapi_connection, None):
                raise
            alive = False
        if not alive:  # as pre-ping does: every connection of the pool older than now is replaced
            raise InvalidatePoolError("the pooled connection was closed while it lay unused")

    event.listen(engine, "checkin", returned)
    event.listen(engine, "checkout", lent)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _serialise_transactions(engine: Engine) -> None:
    """One transaction at a time on a SQLite database, across threads and processes.

    SQLite has one writer; threads or processes that collide wait in its busy handler, which sleeps
    and retries (1, 2, 5, 10 ... 100 ms) and turned concurrent intake into second-long stalls.
    Waiting on a lock instead hands the database over as soon as it is free: a lock in the process
    (shared by every engine of the process on the same file) and, in the processes of
    ``gateway serve`` (:func:`take_turns_across_processes`), an ``flock`` on a file beside the
    database (``gateway.db.lock``) held while a thread of the process has a transaction open, so
    that its worker processes (``GATEWAY_WORKERS``) take turns the same way. The command line does
    not take it: a long read of its own (``gateway audit verify``) must not stop the intake, and
    its rare writes meet the servers' in SQLite's busy handler, as before. A database in memory
    gets the lock in the process only.
    """
    lock = _database_lock(engine.url.database)
    _ENGINE_LOCKS[engine] = lock

    def acquire(_connection: Any) -> None:
        lock.acquire()

    def release(_connection: Any) -> None:
        lock.release()

    event.listen(engine, "begin", acquire)
    event.listen(engine, "commit", release)
    event.listen(engine, "rollback", release)


class DatabaseLock:
    """A re-entrant lock of one SQLite database, held across processes while any thread here holds it.

    The first acquisition in the process (depth 0 -> 1) takes an exclusive ``flock`` on the lock
    file; the last release lets it go. Each process opens the file itself: a descriptor inherited
    through ``fork`` shares its open file description, and so its lock, with the parent's.
    ``flock`` waits in the kernel (the interpreter lock released) and is let go by the kernel
    when the process ends, however it ends.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None
        self._pid = 0

    def acquire(self) -> None:
        self._lock.acquire()
        if self._depth == 0 and self.path is not None and _ACROSS_PROCESSES:
            try:
                descriptor = self._descriptor()
                if descriptor is not None:
                    fcntl.flock(descriptor, fcntl.LOCK_EX)
            except BaseException:
                self._lock.release()
                raise
        self._depth += 1

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._lock.release()

    def __enter__(self) -> DatabaseLock:
        self.acquire()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()

    def _descriptor(self) -> int | None:
        """This process's descriptor of the lock file; None if it cannot be made (a read-only folder)."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            assert self.path is not None
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                # A database nobody can write to here (read-only): its transactions only read, and
                # the lock in the process keeps this process's threads in turn.
                log.warning("no lock file %s (%s): transactions take turns in this process only", self.path, exc)
                self._fd = None
        return self._fd

    def _forget_after_fork(self) -> None:
        """In a forked child: the parent's descriptor and holders are not this process's."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # the description stays open (and locked, if so) in the parent
        self._fd = None
        self._pid = 0
        self._lock = threading.RLock()
        self._depth = 0


_ACROSS_PROCESSES = False
_LOCKS: dict[str, DatabaseLock] = {}
_ENGINE_LOCKS: weakref.WeakKeyDictionary[Engine, DatabaseLock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def _database_lock(database: str | None) -> DatabaseLock:
    """The process's lock of the SQLite database file ``database`` (one per file, whatever the engine).

    ``database`` is a path or, with ``uri=true``, a ``file:`` URI (``file:/srv/gateway.db?mode=ro``).
    """
    if database and database.startswith("file:"):
        name, _, query = database.removeprefix("file:").partition("?")
        if "mode=memory" in query.split("&"):
            name = ":memory:"
        elif name.startswith("//"):  # file://host/path: the path after the (local) authority
            name = "/" + name[2:].partition("/")[2]
        database = urllib.parse.unquote(name)
    if not database or database == ":memory:":
        return DatabaseLock(None)  # each engine in memory is a database of its own
    path = Path(database).resolve()
    with _LOCKS_GUARD:
        lock = _LOCKS.get(str(path))
        if lock is None:
            lock = _LOCKS[str(path)] = DatabaseLock(path.with_name(path.name + ".lock"))
        return lock


def take_turns_across_processes() -> None:
    """From now on this process's SQLite transactions also hold the file's ``flock`` (and so do
    the processes it forks): called by ``gateway serve`` before its workers start."""
    global _ACROSS_PROCESSES
    _ACROSS_PROCESSES = True


def database_turn(engine: object) -> AbstractContextManager[object]:
    """Hold the database for several transactions in a row: on SQLite, its :class:`DatabaseLock`
    (each transaction begun meanwhile re-enters it); elsewhere nothing (PostgreSQL locks rows), and
    nothing for what is not an engine (a session factory bound to none).

    The intake's group commit takes its turn before it gathers a batch, so that on a database file
    shared by several processes what queued while it waited for the others joins the batch.
    """
    lock = _ENGINE_LOCKS.get(engine) if isinstance(engine, Engine) else None
    return lock if lock is not None else contextlib.nullcontext()


def _after_fork_in_child() -> None:
    global _LOCKS_GUARD
    _LOCKS_GUARD = threading.Lock()
    for lock in _LOCKS.values():
        lock._forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


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
