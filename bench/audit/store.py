"""The benchmark's throw-away stores and how it fills them fast.

A store is SQLite in the run's temporary directory or a fresh schema of the PostgreSQL database
given (dropped afterwards), migrated to the gateway's real schema (``gateway.store.db.migrate``).

Filling a tree of millions of entries through ``record()`` and the sequencer would take hours, so
``bulk_tree`` computes the nodes the sequencer would have stored (``tree_nodes``: for every leaf,
the complete subtrees it closes, as ``gateway.audit.merkle.append`` names them) and writes them in
bulk: ``executemany`` in large transactions with the journal off on SQLite, ``COPY`` on PostgreSQL.
The table, its primary key and the rows are exactly the sequencer's, so proofs read what they read
in production.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
from sqlalchemy import text

from gateway.audit.merkle import node_hash, root
from gateway.store.db import connect, migrate

CHUNK = 100_000


@dataclass(frozen=True)
class Store:
    kind: str  # "sqlite" or "postgresql"
    url: str  # SQLAlchemy URL for the gateway's code
    sqlite_path: Path | None = None
    schema: str | None = None
    postgres_url: str | None = None


@contextmanager
def scratch_store(kind: str, workdir: Path, postgres_url: str, name: str) -> Iterator[Store]:
    """A migrated, empty gateway database; a PostgreSQL schema made for it is dropped afterwards."""
    if kind == "sqlite":
        path = workdir / f"{name}.db"
        store = Store(kind, f"sqlite:///{path}", sqlite_path=path)
        _migrate(store.url)
        yield store
        return
    schema = f"bench_audit_{name}_{secrets.token_hex(3)}"
    _execute(postgres_url, f'CREATE SCHEMA "{schema}"')
    try:
        separator = "&" if "?" in postgres_url else "?"
        url = f"{postgres_url}{separator}options={quote(f'-csearch_path={schema}')}"
        store = Store(kind, url, schema=schema, postgres_url=postgres_url)
        _migrate(url)
        yield store
    finally:
        _execute(postgres_url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _migrate(url: str) -> None:
    engine = connect(url)
    try:
        migrate(engine)
    finally:
        engine.dispose()


def _execute(url: str, statement: str) -> None:
    engine = connect(url)
    try:
        with engine.begin() as connection:
            connection.execute(text(statement))
    finally:
        engine.dispose()


def synthetic_leaves(count: int) -> Iterator[bytes]:
    """Leaf hashes of ``count`` distinct entries: a proof's cost does not depend on the entries' contents."""
    for index in range(count):
        yield hashlib.sha256(b"\x00" + index.to_bytes(8, "big")).digest()


class TreeBuilder:
    """Feeds leaf hashes in order; yields every node the sequencer stores; knows each prefix's root."""

    def __init__(self) -> None:
        self.size = 0
        self._left: list[bytes] = []  # per level: the last complete node with an even index

    def add(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        nodes = [(0, self.size, leaf)]
        level, index, node = 0, self.size, leaf
        while index % 2 == 1:
            node = node_hash(self._left[level], node)
            level, index = level + 1, index // 2
            nodes.append((level, index, node))
        if len(self._left) <= level:
            self._left.extend([b""] * (level + 1 - len(self._left)))
        self._left[level] = node
        self.size += 1
        return nodes

    def root(self) -> bytes:
        """The root of the tree so far, from its right edge (the peaks ``merkle.root`` would read)."""
        peaks = {
            (level, (self.size >> level) - 1): self._left[level]
            for level in range(len(self._left))
            if self.size >> level & 1
        }

        class Peaks:
            def hash_at(self, level: int, index: int) -> bytes:
                return peaks[(level, index)]

        return root(Peaks(), self.size)


def write_nodes(store: Store, nodes: Iterable[tuple[int, int, bytes]]) -> int:
    """Bulk-write ``(level, index, hash)`` rows into ``audit_nodes``; returns how many."""
    if store.kind == "sqlite":
        return _sqlite_rows(store, 'INSERT INTO audit_nodes (level, "index", hash) VALUES (?, ?, ?)', nodes)
    return _copy_rows(store, 'COPY audit_nodes (level, "index", hash) FROM STDIN', nodes)


def write_entries(store: Store, rows: Iterable[tuple[int, str, str, str | None, bytes, bytes]]) -> int:
    """Bulk-write ``(leaf_index, at, kind, message_id, entry, leaf_hash)`` rows into ``audit_entries``."""
    columns = "(leaf_index, at, kind, message_id, entry, leaf_hash)"
    if store.kind == "sqlite":
        statement = f"INSERT INTO audit_entries {columns} VALUES (?, ?, ?, ?, ?, ?)"  # noqa: S608 (constants only)
        return _sqlite_rows(store, statement, rows)
    return _copy_rows(store, f"COPY audit_entries {columns} FROM STDIN", rows)


def _sqlite_rows(store: Store, statement: str, rows: Iterable[tuple[object, ...]]) -> int:
    assert store.sqlite_path is not None
    connection = sqlite3.connect(store.sqlite_path, isolation_level=None)
    written = 0
    try:
        # A throw-away database being filled: no journal and no fsync while loading.
        connection.execute("PRAGMA journal_mode=OFF")
        connection.execute("PRAGMA synchronous=OFF")
        batch: list[tuple[object, ...]] = []
        for row in rows:
            batch.append(row)
            if len(batch) == CHUNK:
                written += _sqlite_batch(connection, statement, batch)
                batch = []
        written += _sqlite_batch(connection, statement, batch)
    finally:
        connection.execute("PRAGMA journal_mode=WAL")  # as the gateway runs it
        connection.close()
    return written


def _sqlite_batch(connection: sqlite3.Connection, statement: str, batch: list[tuple[object, ...]]) -> int:
    connection.execute("BEGIN")
    connection.executemany(statement, batch)
    connection.execute("COMMIT")
    return len(batch)


def _copy_rows(store: Store, statement: str, rows: Iterable[tuple[object, ...]]) -> int:
    assert store.postgres_url is not None and store.schema is not None
    written = 0
    with psycopg.connect(store.postgres_url, options=f"-csearch_path={store.schema}") as connection:
        with connection.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
                written += 1
        connection.commit()
        connection.execute("ANALYZE")
    return written
