"""Recomputing the audit log from its stored entries, and checking every checkpoint against it.

Each entry's bytes must hash to the leaf hash recorded with it and to the leaf the tree integrated
(a changed entry); leaf indexes must run without gaps (a deleted entry); and the root of every
prefix that a checkpoint names must equal the checkpoint's root, whose signature must verify (a
changed, removed or reordered entry anywhere before it). One pass, O(log n) memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.audit import checkpoint as notes
from gateway.audit.merkle import CompactRange, leaf_hash
from gateway.audit.models import AuditCheckpoint, AuditEntry, AuditNode
from gateway.audit.sequencer import KEY_NAME

CHUNK = 5000


@dataclass(frozen=True)
class Problem:
    position: int
    what: str


@dataclass
class Report:
    entries: int = 0
    checkpoints: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_log(
    session: Session, public_key: ec.EllipticCurvePublicKey, progress: Callable[[int], None] | None = None
) -> Report:
    report = Report()
    by_size: dict[int, list[AuditCheckpoint]] = {}
    for point in session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.size)):
        by_size.setdefault(point.size, []).append(point)
    last = session.scalar(select(func.max(AuditEntry.leaf_index)))
    end = -1 if last is None else int(last)
    tree = CompactRange()
    expected = 0
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
            computed = leaf_hash(entry)
            if computed != recorded:
                report.problems.append(Problem(index, "the entry was changed: it no longer hashes to its leaf hash"))
            integrated = leaves.get(index)
            if integrated is not None and integrated != computed:
                report.problems.append(
                    Problem(index, "the entry differs from the leaf the tree integrated (changed or reordered)")
                )
            tree.append(computed)
            expected += 1
            report.entries += 1
            _check_checkpoints(by_size.pop(tree.size, []), tree, public_key, report)
        if progress is not None:
            progress(len(rows))
    for size, points in sorted(by_size.items()):
        report.checkpoints += len(points)
        report.problems.append(
            Problem(size, f"a checkpoint covers {size} entries but only {tree.size} exist (deleted)")
        )
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
