"""Writes that wait for their transaction's commit and then run as one statement for many rows.

The intake's group commit (``gateway.intake.writer``) runs many messages in one transaction, and a
message used to run each of its rows through SQLAlchemy on its own: a notice, the index of its
graduate, its receipt, its delivery to a pull mailbox. Where nothing reads such a row back in the
same transaction, it can wait for the commit and go with the other messages' rows as one
``executemany``: one statement's bookkeeping for the batch instead of one for each message
(bench/intake/README.md, sixth and eighth passes).

A session opts in with :func:`defer_writes` (the writer's sessions do); in any other session
:func:`write` runs the statement at once, as before. A piece of a batch that is rolled back to its
savepoint forgets its deferred rows with it (the writer keeps the earlier pieces', as it does the
audit entries'); a rollback of the transaction forgets them all.

On PostgreSQL (psycopg 3 with libpq's pipeline mode) the statements of one :func:`write_now` go to
the server together and are answered together: one round trip for the batch's mailbox deliveries,
notices and graduates' subjects instead of one each. Nothing reads their results, which is what
allows it (SQLAlchemy reads no rows in pipeline mode). Each round trip costs the writer's thread
its wait for the server and then its wait for the interpreter lock, which the request threads
hold meanwhile (bench/intake/README.md, tenth pass). :func:`commit` sends the rows kept for the
commit (the intake's receipts) and the COMMIT itself together too: one round trip, and the audit
log's counter row, which the batch holds from its receipts' indexes to its commit, let go one
round trip sooner (eleventh pass).

On PostgreSQL, rows kept by INSERTs alone can go as one statement instead: each INSERT a
data-modifying common table expression that reads its rows from one JSON parameter, an array of
arrays (``kept_0 AS (INSERT INTO t (a, b) SELECT CAST(given.value->>0 AS INTEGER), ... FROM
json_array_elements(:kept_0) ...)``). :func:`take_inserts` gives them so to the caller, who runs
them in a statement of its own: the audit log's (``gateway.audit.log``) takes the batch's leaf
indexes and writes its entries and these rows together, one statement and one round trip where
there were two round trips and four statements, each with SQLAlchemy's and psycopg's bookkeeping
around it (bench/intake/README.md, thirteenth pass). :func:`write_now` uses the same form when it
is given. One JSON text a statement, not an array a column: psycopg adapts each list parameter in
Python, some 20 - 40 us a column here, which cost more than the statements saved. Not for an
UPDATE or a DELETE: the expressions of one statement see the tables as they were before it, so
an UPDATE there would not find a row an INSERT beside it wrote; such a statement, or an INSERT
with a Python-side default the rows leave out, or rows that name different columns, or a column
of a type with no JSON form here, keeps the rows for :func:`write_now`'s way. Hand-written SQL
because SQLAlchemy's Core has no construct for an INSERT from a JSON parameter, let alone several
of them in one statement.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Connection, Dialect, Table, TextClause, event, insert, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable
from sqlalchemy.sql.dml import Insert
from sqlalchemy.types import Boolean, Date, DateTime, Integer, LargeBinary, NullType, String

DEFERRED_KEY = "gateway.deferred_writes"  # session.info: [(statement, parameters), ...] in order
_OPTED_IN = "gateway.defer_writes"


def defer_writes(session: Session) -> None:
    """Let :func:`write` keep ``session``'s rows for its commit (for this session's life)."""
    session.info[_OPTED_IN] = True


def write(session: Session, statement: Executable, parameters: Mapping[str, Any]) -> None:
    """Run ``statement`` with ``parameters`` in ``session``'s transaction: at its commit, with the
    other rows of the same statement, if the session defers writes; at once otherwise.

    Only for a row that nothing reads back before the commit, whose statement cannot fail but with
    the database (no key it could break): a deferred row's error fails the whole commit.
    """
    if session.info.get(_OPTED_IN):
        session.info.setdefault(DEFERRED_KEY, []).append((statement, parameters))
    else:
        session.execute(statement, parameters)


def write_now(session: Session) -> None:
    """Run the rows kept so far in ``session`` now, one statement each, rather than at the commit.

    The group commit's writer calls it once its batch's pieces have done their work, before their
    finishes take the audit log's counter row: that row is then held to the commit for the
    receipts' rows alone, not for every deferred row of the batch (bench/intake/README.md, ninth
    pass). Rows kept later still wait for the commit.
    """
    kept = take_inserts(session)
    if kept is not None:
        session.execute(_inserts_alone(kept.expressions), kept.parameters)
        return
    by_statement = _by_statement(session.info.pop(DEFERRED_KEY, None) or [])
    if not by_statement:
        return
    if len(by_statement) > 1 and _pipelined(connection := session.connection()):
        _in_one_round_trip(session, connection, by_statement)
        return
    for statement, rows in by_statement.items():
        session.execute(statement, rows)


@dataclass(frozen=True)
class KeptInserts:
    """Kept rows as the common table expressions of one PostgreSQL statement (:func:`take_inserts`)."""

    names: tuple[str, ...]  # the expressions' names ("kept_0", ...): each returns a row a row written
    expressions: tuple[str, ...]  # "kept_0 AS (INSERT INTO ... SELECT ... FROM json_array_elements(...) ...)", ...
    parameters: dict[str, str]  # each statement's rows as one JSON array of arrays, named as its expression


def take_inserts(session: Session) -> KeptInserts | None:
    """The rows kept so far in ``session``, taken out of it as :class:`KeptInserts`, for the caller
    to put in front of a statement of its own (``WITH <expressions>, ... <statement>``) and run.

    None, the rows left kept, when nothing is kept, off PostgreSQL, or when a kept statement has no
    such form (the module's docstring): :func:`write_now` or the commit writes them then.
    """
    pending: list[tuple[Executable, Mapping[str, Any]]] | None = session.info.get(DEFERRED_KEY)
    if not pending:
        return None
    dialect = session.get_bind().dialect
    if dialect.name != "postgresql":
        return None
    names: list[str] = []
    expressions: list[str] = []
    parameters: dict[str, str] = {}
    for position, (statement, rows) in enumerate(_by_statement(pending).items()):
        columns = tuple(rows[0])
        if not isinstance(statement, Insert) or any(tuple(row) != columns for row in rows):
            return None
        form = _insert_form(statement, columns, dialect, f"kept_{position}")
        if form is None:
            return None
        names.append(form.name)
        expressions.append(form.expression)
        parameters[form.name] = _json_rows(rows, form.converters)
    del session.info[DEFERRED_KEY]
    return KeptInserts(tuple(names), tuple(expressions), parameters)


def _json_rows(rows: list[Mapping[str, Any]], converters: tuple[tuple[int, Callable[[Any], Any]], ...]) -> str:
    """The rows as one JSON array of arrays, each value as its column's expression reads it."""
    listed = []
    for row in rows:
        values = list(row.values())
        for index, convert in converters:
            if values[index] is not None:
                values[index] = convert(values[index])
        listed.append(values)
    return json.dumps(listed, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class _InsertForm:
    name: str  # of the expression, and of its parameter
    expression: str
    converters: tuple[tuple[int, Callable[[Any], Any]], ...]  # (column's place, its value to JSON's)


@functools.lru_cache(maxsize=256)
def _insert_form(statement: Insert, columns: tuple[str, ...], dialect: Dialect, name: str) -> _InsertForm | None:
    """``statement`` (a plain INSERT) with rows of ``columns`` as the common table expression
    ``name``, reading them from a JSON parameter of the same name; None when it is not a plain
    INSERT of its table's columns, when a column the rows leave out has a default SQLAlchemy would
    compute in Python, or when a column's type has no JSON form here (text, integers, booleans,
    timestamps and dates as ISO 8601, bytes as hex: what the kept rows hold)."""
    table = statement.table
    if not isinstance(table, Table) or not statement.compare(insert(table)):
        return None
    if any(key not in table.c for key in columns):
        return None
    if any(column.default is not None for column in table.c if column.key not in columns):
        return None
    given = [table.c[key] for key in columns]
    read: list[str] = []
    converters: list[tuple[int, Callable[[Any], Any]]] = []
    for index, column in enumerate(given):
        column_type = _column_type(column)
        kind = getattr(column_type, "impl_instance", column_type)  # a TypeDecorator's underlying type
        value = f"given.value->>{index}"
        if isinstance(kind, LargeBinary):
            read.append(f"decode({value}, 'hex')")
            converters.append((index, bytes.hex))
            continue
        if not isinstance(kind, (String, Integer, Boolean, DateTime, Date)):
            return None
        read.append(f"CAST({value} AS {column_type.compile(dialect=dialect)})")
        if isinstance(kind, (DateTime, Date)):
            process = column_type.dialect_impl(dialect).bind_processor(dialect)
            converters.append((index, _iso_format(process)))
    # Built from the table's metadata alone (names quoted by the dialect, types compiled by it); the
    # rows' values travel in the JSON parameter.
    prepare = dialect.identifier_preparer
    expression = (
        f"{name} AS (INSERT INTO {prepare.format_table(table)} "  # noqa: S608
        f"({', '.join(prepare.format_column(column) for column in given)}) SELECT {', '.join(read)} "
        f"FROM json_array_elements(CAST(:{name} AS json)) WITH ORDINALITY AS given(value, place) ORDER BY given.place "
        "RETURNING 1)"
    )
    return _InsertForm(name, expression, tuple(converters))


def _iso_format(process: Callable[[Any], Any] | None) -> Callable[[Any], Any]:
    """A timestamp's or a date's ISO 8601 form, after its type's bind processor (the store's UTC)."""
    if process is None:
        return lambda value: value.isoformat()
    return lambda value: process(value).isoformat()


def _column_type(column: Column[Any]) -> Any:
    """A column's type; a foreign key's declared without one is its target's."""
    if isinstance(column.type, NullType) and column.foreign_keys:
        return next(iter(column.foreign_keys)).column.type
    return column.type


@functools.lru_cache(maxsize=64)
def _inserts_alone(expressions: tuple[str, ...]) -> TextClause:
    """The kept rows' expressions as a statement of their own (their INSERTs run whatever it selects)."""
    return text(f"WITH {', '.join(expressions)} SELECT 1")


def _by_statement(
    pending: list[tuple[Executable, Mapping[str, Any]]],
) -> dict[Executable, list[Mapping[str, Any]]]:
    """The kept rows grouped by statement, each statement's rows in the order they were written."""
    grouped: dict[Executable, list[Mapping[str, Any]]] = {}
    for statement, parameters in pending:
        grouped.setdefault(statement, []).append(parameters)
    return grouped


def _pipelined(connection: Connection) -> bool:
    """psycopg 3 on a libpq with pipeline mode (14 or later)."""
    if connection.dialect.driver != "psycopg":
        return False
    from psycopg import Pipeline

    return bool(Pipeline.is_supported())


def _in_one_round_trip(
    session: Session,
    connection: Connection,
    by_statement: dict[Executable, list[Mapping[str, Any]]],
    *,
    commit: bool = False,
) -> None:
    """The statements in one psycopg pipeline: sent together, their errors raised at its end; with
    ``commit``, followed by the transaction's COMMIT (not run when a statement before it failed).

    An error the server reports there comes from psycopg as it is; it is raised as SQLAlchemy's
    (``IntegrityError``, ``OperationalError`` ...), as a statement run on its own would raise it,
    so that the writer and the intake tell a lost database from a failed statement the same way.
    """
    import psycopg

    dbapi_connection = connection.connection.dbapi_connection
    assert dbapi_connection is not None
    try:
        with dbapi_connection.pipeline():
            for statement, rows in by_statement.items():
                # a lone row's INSERT would fetch the new primary key, which is not there yet
                session.execute(statement.inline() if isinstance(statement, Insert) else statement, rows)
            if commit:
                cursor = dbapi_connection.cursor()
                try:
                    cursor.execute("COMMIT")
                finally:
                    cursor.close()
    except psycopg.Error as exc:
        raise DBAPIError.instance(
            None, None, exc, psycopg.Error, dialect=connection.dialect, connection_invalidated=dbapi_connection.closed
        ) from exc


def commit(session: Session) -> None:
    """Commit ``session``'s transaction, with the rows it kept for the commit.

    On PostgreSQL (psycopg 3, pipeline mode) the kept rows and the COMMIT go to the server together,
    in one round trip; the session's own commit then finds the transaction ended on the server (the
    driver's commit has nothing to do) and ends its own. What the commit does first runs first, in
    the transaction: the session's ``before_commit`` listeners (the audit entries' indexes,
    ``gateway.audit.log``) and the ORM's flush; the listeners run again in the session's commit and
    must find nothing left to do then (each takes its work from ``session.info``). Elsewhere, and in
    a savepoint, it is ``session.commit()``. An error of a kept row aborts the transaction there
    (the COMMIT is not run) and is raised as SQLAlchemy's, as :func:`write_now` raises it.
    """
    connection = session.connection()
    if session.in_nested_transaction() or not _pipelined(connection):
        session.commit()
        return
    pending: list[tuple[Executable, Mapping[str, Any]]] = session.info.pop(DEFERRED_KEY, None) or []
    session.dispatch.before_commit(session)  # in the transaction, before its COMMIT is sent
    session.flush()  # the ORM's changes, as the commit would make them, before the pipeline (which reads no rows)
    pending += session.info.pop(DEFERRED_KEY, None) or []
    _in_one_round_trip(session, connection, _by_statement(pending), commit=True)
    session.commit()


@event.listens_for(Session, "before_commit")
def _write_before_commit(session: Session) -> None:
    if not session.in_nested_transaction():  # a savepoint's release is not the commit
        write_now(session)


@event.listens_for(Session, "after_rollback")
def _forget_on_rollback(session: Session) -> None:
    session.info.pop(DEFERRED_KEY, None)
