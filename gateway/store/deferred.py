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
round trip sooner (eleventh pass). A ``before_commit`` listener may also send a statement whose
rows it needs in that round trip, last before the COMMIT (:func:`with_commit`): the intake's audit
entries take their indexes there, so that the counter row is held on the server only, from that
statement to the COMMIT (fourteenth pass).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import Compiled
from sqlalchemy.sql.dml import Insert

DEFERRED_KEY = "gateway.deferred_writes"  # session.info: [(statement, parameters), ...] in order
_OPTED_IN = "gateway.defer_writes"
WITH_COMMIT_KEY = "gateway.with_commit"  # session.info: [(statement, parameters, on_rows), ...] (``with_commit``)
_COMMITTING = "gateway.committing"  # session.info: set while ``commit`` runs the session's before_commit listeners


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


def with_commit(
    session: Session,
    statement: ClauseElement,
    parameters: Mapping[str, Any],
    on_rows: Callable[[Sequence[tuple[Any, ...]]], None],
) -> bool:
    """Send ``statement`` in the commit's round trip, the last before the COMMIT, and hand its rows
    to ``on_rows`` once the COMMIT has succeeded; False (nothing queued) where that cannot be done:
    then the caller runs the statement itself.

    Only from a ``before_commit`` listener run by :func:`commit` on PostgreSQL with pipeline mode
    (``session.info`` says so while it runs them). A lock the statement takes is then held on the
    server from the statement to the COMMIT, with no round trip to the client in between: the
    audit log's counter row, which every process's batches take (``gateway.audit.log``).
    ``statement`` is built once (a module's constant): its compiled form is kept.
    """
    if not session.info.get(_COMMITTING):
        return False
    session.info.setdefault(WITH_COMMIT_KEY, []).append((statement, parameters, on_rows))
    return True


def write_now(session: Session) -> None:
    """Run the rows kept so far in ``session`` now, one statement each, rather than at the commit.

    The group commit's writer calls it once its batch's pieces have done their work, before their
    finishes take the audit log's counter row: that row is then held to the commit for the
    receipts' rows alone, not for every deferred row of the batch (bench/intake/README.md, ninth
    pass). Rows kept later still wait for the commit.
    """
    by_statement = _by_statement(session.info.pop(DEFERRED_KEY, None) or [])
    if not by_statement:
        return
    if len(by_statement) > 1 and pipelined(connection := session.connection()):
        _in_one_round_trip(session, connection, by_statement)
        return
    for statement, rows in by_statement.items():
        session.execute(statement, rows)


def _by_statement(
    pending: list[tuple[Executable, Mapping[str, Any]]],
) -> dict[Executable, list[Mapping[str, Any]]]:
    """The kept rows grouped by statement, each statement's rows in the order they were written."""
    grouped: dict[Executable, list[Mapping[str, Any]]] = {}
    for statement, parameters in pending:
        grouped.setdefault(statement, []).append(parameters)
    return grouped


def pipelined(connection: Connection | Engine) -> bool:
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
    returning: list[tuple[Any, Callable[[Sequence[tuple[Any, ...]]], None]]] = []
    try:
        with dbapi_connection.pipeline():
            for statement, rows in by_statement.items():
                # a lone row's INSERT would fetch the new primary key, which is not there yet
                session.execute(statement.inline() if isinstance(statement, Insert) else statement, rows)
            if commit:
                # SQLAlchemy reads no rows in pipeline mode: these go on the driver's cursor, as compiled
                for statement, parameters, on_rows in session.info.pop(WITH_COMMIT_KEY, None) or []:
                    sql, values = _compiled(connection, statement, parameters)
                    cursor = dbapi_connection.cursor()
                    cursor.execute(sql, values)
                    returning.append((cursor, on_rows))
                cursor = dbapi_connection.cursor()
                try:
                    cursor.execute("COMMIT")
                finally:
                    cursor.close()
        for cursor, on_rows in returning:
            rows = cursor.fetchall()
            cursor.close()
            on_rows(rows)
    except psycopg.Error as exc:
        raise DBAPIError.instance(
            None, None, exc, psycopg.Error, dialect=connection.dialect, connection_invalidated=dbapi_connection.closed
        ) from exc


_COMPILED: dict[tuple[ClauseElement, str], Compiled] = {}  # (statement, dialect): its compiled form


def _compiled(connection: Connection, statement: ClauseElement, parameters: Mapping[str, Any]) -> tuple[str, Any]:
    """``statement``'s SQL for the driver and its parameters, as SQLAlchemy would pass them. The
    statement is compiled once (``with_commit`` takes statements built once, at import)."""
    key = (statement, connection.dialect.name)
    compiled = _COMPILED.get(key)
    if compiled is None:
        compiled = _COMPILED[key] = statement.compile(dialect=connection.dialect)
    return compiled.string, compiled.construct_params(parameters)


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
    if session.in_nested_transaction() or not pipelined(connection):
        session.commit()
        return
    pending: list[tuple[Executable, Mapping[str, Any]]] = session.info.pop(DEFERRED_KEY, None) or []
    session.info[_COMMITTING] = True  # ``with_commit`` may queue statements for the COMMIT's round trip
    try:
        session.dispatch.before_commit(session)  # in the transaction, before its COMMIT is sent
    finally:
        session.info.pop(_COMMITTING, None)
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
    session.info.pop(WITH_COMMIT_KEY, None)
