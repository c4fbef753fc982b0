"""Rows kept for the commit (``gateway.store.deferred``): all written, on PostgreSQL in one round
trip, and a failing row fails the transaction with SQLAlchemy's error, as a statement of its own would.
A statement sent with the commit (``with_commit``) goes in the COMMIT's round trip on PostgreSQL,
its rows handed over once the COMMIT has succeeded."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, bindparam, event, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.store.deferred import commit, defer_writes, with_commit, write, write_now

_METADATA = MetaData()
NOTES = Table("deferred_notes", _METADATA, Column("id", Integer, primary_key=True), Column("text", String(40)))
TAGS = Table(
    "deferred_tags", _METADATA, Column("id", Integer, primary_key=True), Column("tag", String(40), unique=True)
)


@pytest.fixture
def tables(migrated: Engine) -> Iterator[Engine]:
    """The two tables above beside the store's (SQLite, then a fresh PostgreSQL schema)."""
    _METADATA.create_all(migrated)
    yield migrated
    _METADATA.drop_all(migrated)


def _keep_rows(session: Session) -> None:
    defer_writes(session)
    for note in ("a", "b", "c"):
        write(session, insert(NOTES), {"text": note})
    write(session, insert(TAGS), {"tag": "only"})  # a lone row: its INSERT must not wait for a key
    write(session, update(NOTES).where(NOTES.c.text == "a").values(text="A"), {})


def test_every_kept_row_is_written_in_order_at_the_commit(tables: Engine) -> None:
    with Session(tables) as session, session.begin():
        _keep_rows(session)
        assert session.execute(select(NOTES.c.text)).all() == []  # kept, not written yet
    with Session(tables) as session:
        assert session.scalars(select(NOTES.c.text).order_by(NOTES.c.id)).all() == ["A", "b", "c"]
        assert session.scalars(select(TAGS.c.tag)).all() == ["only"]


@pytest.fixture
def postgres_tables(postgres_url: str) -> Iterator[Engine]:
    """The two tables above beside the store's, on PostgreSQL alone (the pipeline's round trips)."""
    from gateway.store.db import connect, migrate

    engine = connect(postgres_url)
    migrate(engine)
    _METADATA.create_all(engine)
    yield engine
    _METADATA.drop_all(engine)
    engine.dispose()


def _round_trips(trace: Path) -> int:
    """Round trips in a libpq trace: the client's Sync messages and its simple Query messages (a COMMIT)."""
    return sum(
        1 for line in trace.read_text().splitlines() if "\tF\t" in line and ("\tSync" in line or "\tQuery" in line)
    )


def test_on_postgresql_the_kept_rows_of_several_statements_go_in_one_round_trip(
    postgres_tables: Engine, tmp_path: Path
) -> None:
    trace = tmp_path / "libpq.trace"
    with Session(postgres_tables) as session, session.begin(), trace.open("w") as traced:
        _keep_rows(session)
        session.execute(select(NOTES.c.id))  # the transaction's BEGIN, before the trace (as in the writer)
        dbapi_connection = session.connection().connection.dbapi_connection
        dbapi_connection.pgconn.trace(traced.fileno())  # type: ignore[union-attr]
        write_now(session)
        dbapi_connection.pgconn.untrace()  # type: ignore[union-attr]
    assert _round_trips(trace) == 1  # three statements: three round trips when each went alone
    with Session(postgres_tables) as session:
        assert session.scalars(select(NOTES.c.text).order_by(NOTES.c.id)).all() == ["A", "b", "c"]


def test_a_kept_row_that_breaks_a_key_fails_the_commit_with_sqlalchemys_error(tables: Engine) -> None:
    with pytest.raises(IntegrityError), Session(tables) as session, session.begin():
        defer_writes(session)
        write(session, insert(NOTES), {"text": "x"})
        write(session, insert(TAGS), {"tag": "twice"})
        write(session, insert(TAGS), {"tag": "twice"})
    with Session(tables) as session:  # nothing of the transaction is stored
        assert session.execute(select(NOTES.c.text)).all() == []
        assert session.execute(select(TAGS.c.tag)).all() == []


def _traced_commit(engine: Engine, trace: Path, keep: Callable[[Session], None]) -> None:
    with Session(engine) as session, trace.open("w") as traced:
        session.begin()
        session.execute(select(NOTES.c.id))  # the transaction's BEGIN, before the trace
        keep(session)
        dbapi_connection = session.connection().connection.dbapi_connection
        dbapi_connection.pgconn.trace(traced.fileno())  # type: ignore[union-attr]
        try:
            commit(session)
        finally:
            dbapi_connection.pgconn.untrace()  # type: ignore[union-attr]


def test_on_postgresql_the_rows_kept_for_the_commit_and_the_commit_go_in_one_round_trip(
    postgres_tables: Engine, tmp_path: Path
) -> None:
    def keep(session: Session) -> None:
        defer_writes(session)
        write(session, insert(NOTES), {"text": "kept"})
        write(session, update(NOTES).where(NOTES.c.text == "kept").values(text="committed"), {})

    trace = tmp_path / "libpq.trace"
    _traced_commit(postgres_tables, trace, keep)
    assert _round_trips(trace) == 1  # with session.commit(): the rows' round trip, then the COMMIT's
    with Session(postgres_tables) as session:  # committed, seen from another connection
        assert session.scalars(select(NOTES.c.text)).all() == ["committed"]


def test_on_postgresql_a_kept_row_that_fails_leaves_the_commit_unrun(postgres_tables: Engine) -> None:
    def keep(session: Session) -> None:
        defer_writes(session)
        write(session, insert(NOTES), {"text": "x"})
        write(session, insert(TAGS), {"tag": "twice"})
        write(session, insert(TAGS), {"tag": "twice"})

    with pytest.raises(IntegrityError), Session(postgres_tables) as session:
        session.begin()
        keep(session)
        commit(session)
    with Session(postgres_tables) as session:  # nothing of the transaction is stored
        assert session.execute(select(NOTES.c.text)).all() == []
        assert session.execute(select(TAGS.c.tag)).all() == []


def test_on_postgresql_what_the_commit_does_first_runs_in_the_transaction(postgres_tables: Engine) -> None:
    """A ``before_commit`` listener's write (the audit entries' indexes) is part of the transaction
    that :func:`commit` ends, not run after its COMMIT."""
    seen: list[int] = []

    def before_commit(session: Session) -> None:
        if session.info.pop("test.note", None):
            session.execute(insert(NOTES), {"text": "by the listener"})
            seen.append(session.execute(text("SELECT txid_current()")).scalar_one())

    event.listen(Session, "before_commit", before_commit)
    try:
        with Session(postgres_tables) as session:
            session.begin()
            transaction = session.execute(text("SELECT txid_current()")).scalar_one()
            defer_writes(session)
            write(session, insert(NOTES), {"text": "kept"})
            session.info["test.note"] = True
            commit(session)
    finally:
        event.remove(Session, "before_commit", before_commit)
    assert seen == [transaction]
    with Session(postgres_tables) as session:
        assert sorted(session.scalars(select(NOTES.c.text))) == ["by the listener", "kept"]


_TAG_RETURNING = insert(TAGS).values(tag=bindparam("tag")).returning(TAGS.c.id, TAGS.c.tag)


def test_with_commit_queues_nothing_outside_the_commit(tables: Engine) -> None:
    """Called anywhere but in a ``before_commit`` listener run by :func:`commit` on PostgreSQL, it
    declines, and the caller runs the statement itself."""
    handed: list[object] = []
    with Session(tables) as session:
        session.begin()
        defer_writes(session)
        assert not with_commit(session, _TAG_RETURNING, {"tag": "x"}, handed.append)
        commit(session)
    assert handed == []
    with Session(tables) as session:
        assert session.execute(select(TAGS.c.tag)).all() == []


class _SendWithCommit:
    """A ``before_commit`` listener that sends one tag's INSERT with the commit, noting what it was handed."""

    def __init__(self, engine: Engine, tag: str) -> None:
        self.engine, self.tag = engine, tag
        self.queued: list[bool] = []
        self.handed: list[tuple[Sequence[tuple[Any, ...]], list[str]]] = []

    def __call__(self, session: Session) -> None:
        if session.info.pop("test.tag", None):
            self.queued.append(with_commit(session, _TAG_RETURNING, {"tag": self.tag}, self.rows))

    def rows(self, rows: Sequence[tuple[Any, ...]]) -> None:
        with Session(self.engine) as other:  # another connection sees the row: handed after the COMMIT
            self.handed.append((rows, list(other.scalars(select(TAGS.c.tag)))))


def test_on_postgresql_a_statement_sent_with_the_commit_goes_in_its_round_trip_and_its_rows_after_it(
    postgres_tables: Engine, tmp_path: Path
) -> None:
    listener = _SendWithCommit(postgres_tables, "sent with the commit")
    event.listen(Session, "before_commit", listener)
    try:

        def keep(session: Session) -> None:
            defer_writes(session)
            write(session, insert(NOTES), {"text": "kept"})
            session.info["test.tag"] = True

        trace = tmp_path / "libpq.trace"
        _traced_commit(postgres_tables, trace, keep)
    finally:
        event.remove(Session, "before_commit", listener)
    assert listener.queued == [True]
    assert _round_trips(trace) == 1  # the kept row, the statement and the COMMIT
    ((rows, seen),) = listener.handed
    assert [tag for _id, tag in rows] == ["sent with the commit"] and seen == ["sent with the commit"]
    with Session(postgres_tables) as session:
        assert session.scalars(select(NOTES.c.text)).all() == ["kept"]


def test_on_postgresql_a_statement_sent_with_the_commit_that_fails_fails_the_commit(postgres_tables: Engine) -> None:
    listener = _SendWithCommit(postgres_tables, "taken")
    with Session(postgres_tables) as session, session.begin():
        session.execute(insert(TAGS), {"tag": "taken"})
    event.listen(Session, "before_commit", listener)
    try:
        with pytest.raises(IntegrityError), Session(postgres_tables) as session:
            session.begin()
            defer_writes(session)
            write(session, insert(NOTES), {"text": "x"})
            session.info["test.tag"] = True
            commit(session)
    finally:
        event.remove(Session, "before_commit", listener)
    assert listener.queued == [True] and listener.handed == []  # no rows handed: nothing was committed
    with Session(postgres_tables) as session:
        assert session.execute(select(NOTES.c.text)).all() == []
