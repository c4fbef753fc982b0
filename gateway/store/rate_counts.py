"""Rate-limit counts in a SQLite file, shared by every process on one machine (``gateway+sqlite://``).

The sign-in and short-code limits count failures through ``limits`` (the library under
Flask-Limiter) in ``GATEWAY_RATE_LIMIT_STORAGE``. ``memory://`` counts in one process; with several
``gateway serve`` workers each would count alone, and an attacker spread over their connections
would get as many tries as there are workers. Production shares a Redis; the embedded default has
none, so its workers share this file instead (``gateway serve`` names it when it starts more than
one: ``data/rate-limits.db``).

Written by hand because ``limits`` stores in memory, Redis, Memcached, MongoDB or etcd only. It
keeps fixed windows (the strategy both users of it take): a key's count and the moment its window
ends, one row per key. Failures are rare (a wrong password, a wrong short code), so each count is a
short transaction of its own; SQLite's own locking shares the file between processes, and the file
outlives a restart, as Redis's counts do.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from typing import Any

from limits.storage import Storage

SCHEME = "gateway+sqlite"
_PURGE_EVERY = 1000  # increments between two sweeps of every expired window


class SqliteCounts(Storage):
    """Fixed-window counts in the SQLite file named by ``gateway+sqlite:///<absolute path>``."""

    STORAGE_SCHEME = [SCHEME]  # noqa: RUF012  (how limits declares it)

    def __init__(self, uri: str, wrap_exceptions: bool = False, **options: Any) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        path = uri.removeprefix(f"{SCHEME}://")
        if not path.startswith("/"):
            raise ValueError(f"{SCHEME}:// names a file by its absolute path: {SCHEME}:///srv/gateway/rate-limits.db")
        self.path = path
        self._local = threading.local()
        self._increments = 0

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return sqlite3.Error

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection (made again in a forked child, which must not use its parent's)."""
        held: tuple[int, sqlite3.Connection] | None = getattr(self._local, "held", None)
        if held is not None and held[0] == os.getpid():
            return held[1]
        connection = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(
            "CREATE TABLE IF NOT EXISTS counts (key TEXT PRIMARY KEY, count INTEGER NOT NULL, ends REAL NOT NULL)"
        )
        self._local.held = (os.getpid(), connection)
        return connection

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add ``amount`` to ``key``'s count, in a window of ``expiry`` seconds begun by its first count."""
        now = time.time()
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.execute("DELETE FROM counts WHERE key = ? AND ends <= ?", (key, now))
            (count,) = connection.execute(
                "INSERT INTO counts (key, count, ends) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET count = count + excluded.count RETURNING count",
                (key, amount, now + expiry),
            ).fetchone()
            self._increments += 1
            if self._increments % _PURGE_EVERY == 0:
                connection.execute("DELETE FROM counts WHERE ends <= ?", (now,))
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return int(count)

    def get(self, key: str) -> int:
        row = (
            self._connection()
            .execute("SELECT count FROM counts WHERE key = ? AND ends > ?", (key, time.time()))
            .fetchone()
        )
        return int(row[0]) if row else 0

    def get_expiry(self, key: str) -> float:
        now = time.time()
        row = self._connection().execute("SELECT ends FROM counts WHERE key = ? AND ends > ?", (key, now)).fetchone()
        return float(row[0]) if row else now

    def check(self) -> bool:
        try:
            self._connection().execute("SELECT 1 FROM counts LIMIT 1").fetchall()
        except sqlite3.Error:
            return False
        return True

    def reset(self) -> int | None:
        return self._connection().execute("DELETE FROM counts").rowcount

    def clear(self, key: str) -> None:
        self._connection().execute("DELETE FROM counts WHERE key = ?", (key,))
