"""Recomputing the audit log from its stored entries, and checking every checkpoint against it.

Each entry's bytes must hash to the leaf hash recorded with it and to the leaf the tree integrated
(a changed entry); leaf indexes must run without gaps (a deleted entry); and the root of every
prefix that a checkpoint names must equal the checkpoint's root, whose signature must verify (a
changed, removed or reordered entry anywhere before it). One pass, O(log n) memory.

The checkpoints in the database can be deleted with the entries they cover, so the log is also
checked against *anchors* held outside it (``gateway.audit.anchors``): the checkpoints the
sequencer published and those an auditor kept. Each must verify, and the log must hold to it: at
least its size, and the same root at that size (else the history was shortened or rewritten).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.audit import checkpoint as notes
from gateway.audit.anchors import Anchor
from gateway.audit.log import size as log_size
from gateway.audit.merkle import CompactRange
from gateway.audit.models import AuditCheckpoint, AuditEntry, AuditNode
from gateway.audit.sequencer import KEY_NAME, stored_leaf

CHUNK = 5000


@dataclass(frozen=True)
class Problem:
    position: int
    what: str


@dataclass
class Report:
    entries: int = 0
    checkpoints: int = 0
    published: int = 0  # published checkpoints checked
    kept: int = 0  # kept checkpoints checked
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_log(
    session: Session,
    public_key: ec.EllipticCurvePublicKey,
    progress: Callable[[int], None] | None = None,
    published: Iterable[Anchor] = (),
    kept: Iterable[Anchor] = (),
) -> Report:
    """Check the whole log; ``published`` in ascending size (as the directory lists them), ``kept`` in any order."""
    report = Report()
    by_size: dict[int, list[AuditCheckpoint]] = {}
    for point in session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.size)):
        by_size.setdefault(point.size, []).append(point)
    anchors = _Anchors(heapq.merge(published, sorted(kept, key=lambda a: a.size), key=lambda a: a.size))
    _, integrated = log_size(session)
    last = session.scalar(select(func.max(AuditEntry.leaf_index)))
    end = -1 if last is None else int(last)
    tree = CompactRange()
    anchors.check_due(tree, public_key, report)
    expected = 0
    stopped = False
    for start in range(0, end + 1, CHUNK):
        rows = session.execute(
            select(AuditEntry.leaf_index, AuditEntry.entry, AuditEntry.leaf_hash)
            .where(AuditEntry.leaf_index >= start, AuditEntry.leaf_index < start + CHUNK)
            .order_by(AuditEntry.leaf_index)
        ).all()
        leaves = dict(
            session.execute(
                select(AuditNode.index, AuditNode.hash).where(
                    AuditNode.level == 0, AuditNode.index >= start, AuditNode.index < start + CHUNK
                )
            ).all()
        )
        for index, entry, recorded in rows:
            if index != expected:
                report.problems.append(Problem(expected, f"entries {expected}..{index - 1} are missing (deleted)"))
                expected = index
            computed, wrong = stored_leaf(entry, recorded)
            if wrong is not None:
                if index >= integrated and not stopped:  # not yet signed into the log, and never will be
                    stopped, wrong = True, f"{wrong}; the sequencer stops here and signs nothing from here on"
                report.problems.append(Problem(index, wrong))
            integrated_leaf = leaves.get(index)
            if integrated_leaf is not None and integrated_leaf != computed:
                report.problems.append(
                    Problem(index, "the entry differs from the leaf the tree integrated (changed or reordered)")
                )
            tree.append(computed)
            expected += 1
            report.entries += 1
            _check_checkpoints(by_size.pop(tree.size, []), tree, public_key, report)
            anchors.check_due(tree, public_key, report)
        if progress is not None:
            progress(len(rows))
    for size, points in sorted(by_size.items()):
        report.checkpoints += len(points)
        report.problems.append(
            Problem(size, f"a checkpoint covers {size} entries but only {tree.size} exist (deleted)")
        )
    anchors.check_beyond(tree, public_key, report)
    return report


def _check_checkpoints(
    points: list[AuditCheckpoint], tree: CompactRange, public_key: ec.EllipticCurvePublicKey, report: Report
) -> None:
    for point in points:
        report.checkpoints += 1
        try:
            signed = notes.verify(point.note, KEY_NAME, public_key)
        except notes.CheckpointInvalid as exc:
            report.problems.append(Problem(point.size, f"checkpoint #{point.id}: {exc}"))
            continue
        if signed.size != point.size or signed.root != point.root:
            report.problems.append(
                Problem(point.size, f"checkpoint #{point.id}: the stored copy differs from the note")
            )
        if signed.root != tree.root():
            report.problems.append(
                Problem(point.size, f"checkpoint #{point.id}: the entries before it do not give its root")
            )


class _Anchors:
    """The anchors in ascending size, each checked when the recomputed tree reaches its size."""

    def __init__(self, ordered: Iterator[Anchor]) -> None:
        self._ordered = ordered
        self._next: Anchor | None = next(ordered, None)

    def check_due(self, tree: CompactRange, public_key: ec.EllipticCurvePublicKey, report: Report) -> None:
        while self._next is not None and self._next.size <= tree.size:
            anchor, self._next = self._next, next(self._ordered, None)
            point = _verified(anchor, public_key, report)
            if point is not None and point.root != tree.root():
                report.problems.append(
                    Problem(
                        anchor.size,
                        f"the first {anchor.size} entries do not give the root of {_name(anchor)}: "
                        "the history was changed",
                    )
                )

    def check_beyond(self, tree: CompactRange, public_key: ec.EllipticCurvePublicKey, report: Report) -> None:
        """The anchors larger than the whole log: each one that verifies says the log was shortened."""
        while self._next is not None:
            anchor, self._next = self._next, next(self._ordered, None)
            if _verified(anchor, public_key, report) is not None:
                report.problems.append(
                    Problem(
                        anchor.size,
                        f"the log has {tree.size} entries, fewer than the {anchor.size} of {_name(anchor)}: "
                        "entries at the end were deleted",
                    )
                )


def _name(anchor: Anchor) -> str:
    return f"the {'published' if anchor.published else 'kept'} checkpoint {anchor.source}"


def _verified(anchor: Anchor, public_key: ec.EllipticCurvePublicKey, report: Report) -> notes.Checkpoint | None:
    """The anchor's checkpoint when its signature verifies and it is of the size it claims; else a problem."""
    if anchor.published:
        report.published += 1
    else:
        report.kept += 1
    try:
        point = notes.verify(anchor.note, KEY_NAME, public_key)
    except notes.CheckpointInvalid as exc:
        report.problems.append(Problem(anchor.size, f"{_name(anchor)}: {exc}"))
        return None
    if point.size != anchor.size:
        report.problems.append(Problem(anchor.size, f"{_name(anchor)} holds a checkpoint of {point.size} entries"))
        return None
    return point
