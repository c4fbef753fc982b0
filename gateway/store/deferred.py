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
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

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
    pending: list[tuple[Executable, Mapping[str, Any]]] | None = session.info.pop(DEFERRED_KEY, None)
    if not pending:
        return
    by_statement: dict[Executable, list[Mapping[str, Any]]] = {}
    for statement, parameters in pending:  # each statement's rows in the order they were written
        by_statement.setdefault(statement, []).append(parameters)
    for statement, rows in by_statement.items():
        session.execute(statement, rows)


@event.listens_for(Session, "before_commit")
def _write_before_commit(session: Session) -> None:
    if not session.in_nested_transaction():  # a savepoint's release is not the commit
        write_now(session)


@event.listens_for(Session, "after_rollback")
def _forget_on_rollback(session: Session) -> None:
    session.info.pop(DEFERRED_KEY, None)
