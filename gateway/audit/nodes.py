"""Reading the stored tree: the one :class:`~gateway.audit.merkle.NodeReader` over ``audit_nodes``.

The sequencer uses it while it writes (nodes of the batch it is building sit in ``pending``);
proofs use :func:`read_planned`, which learns which nodes a proof needs by a dry run of the Merkle
maths and fetches them all in one query: a proof costs one round trip of O(log n) rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import TypeVar

from sqlalchemy import TextClause, select, text
from sqlalchemy.orm import Session

from gateway.audit.merkle import EMPTY_ROOT, NodeReader
from gateway.audit.models import AuditNode

T = TypeVar("T")
Coordinate = tuple[int, int]  # (level, index)


class DbNodeReader:
    """Tree nodes from the database, with nodes not yet written (or already fetched) kept in memory."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self.pending: dict[Coordinate, bytes] = {}

    def hash_at(self, level: int, index: int) -> bytes:
        found = self.pending.get((level, index))
        if found is None:
            found = self._session.scalar(
                select(AuditNode.hash).where(AuditNode.level == level, AuditNode.index == index)
            )
            if found is None:
                raise LookupError(f"audit tree node ({level}, {index}) is missing")
        return found

    def fetch(self, coordinates: Iterable[Coordinate]) -> None:
        """Load the nodes at ``coordinates`` in one query (those missing are left to ``hash_at`` to report)."""
        wanted = sorted(set(coordinates) - self.pending.keys())
        if not wanted:
            return
        by_level: dict[int, list[int]] = {}
        for level, index in wanted:
            by_level.setdefault(level, []).append(index)
        params: dict[str, int] = {}
        for n, (level, indexes) in enumerate(by_level.items()):
            params[f"l{n}"] = level
            params.update({f"i{n}_{k}": index for k, index in enumerate(indexes)})
        rows = self._session.execute(_select_nodes(tuple(len(ixs) for ixs in by_level.values())), params)
        self.pending.update(((level, index), node) for level, index, node in rows)


@lru_cache(maxsize=512)
def _select_nodes(shape: tuple[int, ...]) -> TextClause:
    """``SELECT`` of nodes: one primary-key term per level, ``shape`` giving how many indexes each has.

    Plain SQL, the same on SQLite and PostgreSQL, cached by shape: building the equivalent ORM
    expression cost more than the query itself, and SQLite scans the whole table for the
    row-value form ``(level, index) IN (...)`` (the benchmark found both).
    """
    terms = [
        f'(level = :l{n} AND "index" IN ({", ".join(f":i{n}_{k}" for k in range(count))}))'
        for n, count in enumerate(shape)
    ]
    return text(f'SELECT level, "index", hash FROM audit_nodes WHERE {" OR ".join(terms)}')  # noqa: S608


class _Planner:
    """A reader that only notes what is asked for: the Merkle maths' reads do not depend on the hashes."""

    def __init__(self) -> None:
        self.wanted: set[Coordinate] = set()

    def hash_at(self, level: int, index: int) -> bytes:
        self.wanted.add((level, index))
        return EMPTY_ROOT


def read_planned(session: Session, compute: Callable[[NodeReader], T]) -> T:
    """``compute(reader)`` with every node it reads fetched beforehand in one query.

    Raises ``LookupError`` when a node it needs is not stored (a tree larger than the sequencer built).
    """
    planner = _Planner()
    compute(planner)
    reader = DbNodeReader(session)
    reader.fetch(planner.wanted)
    return compute(reader)
