"""Checkpoints held outside the database, and whether the stored log still holds to them.

An *anchor* is a signed checkpoint that the database writer cannot change: one an auditor kept (a
file, or fetched from a URL the operator names, such as another node's ``/log/checkpoint``), one
the sequencer published (``gateway.audit.publish``), or the last one an auditor's integrity page
saw. The stored log holds to it when it has at least that many entries and its first N entries
give the anchor's root: then the anchor's log is a prefix of the stored one.

Two depths of check: :func:`gateway.audit.verify.verify_log` recomputes the tree from the entries
themselves (complete, one pass over the log); :func:`tree_holds` asks only the stored tree nodes
(O(log n) nodes in one query), for pages and ``/readyz`` that answer at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import requests
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.audit import checkpoint as notes
from gateway.audit.log import size as log_size
from gateway.audit.merkle import root
from gateway.audit.models import AuditEntry
from gateway.audit.nodes import read_planned
from gateway.audit.publish import CheckpointDirectory
from gateway.audit.sequencer import KEY_NAME, missing_for_good, stored_leaf

MAX_NOTE_BYTES = 64 * 1024  # a checkpoint note is a few hundred bytes
FETCH_TIMEOUT = 10.0  # seconds, to connect and between bytes


@dataclass(frozen=True)
class Anchor:
    """A signed checkpoint note from ``source`` (a path or URL, for reports) that claims ``size`` entries."""

    source: str
    size: int
    note: str
    published: bool = False  # by this gateway's sequencer, rather than kept by an auditor


class AnchorUnusable(ValueError):
    """A kept checkpoint that cannot be read, fetched, or is not signed by this gateway's key."""


def kept(source: str, public_key: ec.EllipticCurvePublicKey) -> Anchor:
    """The checkpoint an auditor kept, from a file or an ``http(s)://`` URL, its signature verified.

    Raises :class:`AnchorUnusable` saying what is wrong. The URL is one the operator typed: nothing
    here is ever fetched because of a message.
    """
    if source.startswith(("http://", "https://")):
        note = _fetch(source)
    else:
        try:
            note = Path(source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise AnchorUnusable(f"cannot read {source}: {exc}") from None
    try:
        point = notes.verify(note, KEY_NAME, public_key)
    except notes.CheckpointInvalid as exc:
        raise AnchorUnusable(f"{source} is not a checkpoint signed by this gateway's key: {exc}") from None
    return Anchor(source, point.size, note)


def _fetch(url: str) -> str:
    try:
        with requests.get(url, timeout=FETCH_TIMEOUT, stream=True, allow_redirects=False) as answer:
            if answer.status_code != 200:
                raise AnchorUnusable(f"{url} answered HTTP {answer.status_code}, not a checkpoint")
            body = b""
            for chunk in answer.iter_content(chunk_size=8192):
                body += chunk
                if len(body) > MAX_NOTE_BYTES:
                    raise AnchorUnusable(f"{url} answered more than {MAX_NOTE_BYTES} bytes: not a checkpoint")
    except requests.RequestException as exc:
        raise AnchorUnusable(f"cannot fetch {url}: {exc}") from None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise AnchorUnusable(f"{url} did not answer UTF-8 text: not a checkpoint") from None


def published_anchors(directory: CheckpointDirectory) -> Iterator[Anchor]:
    """Every checkpoint published in ``directory`` so far, smallest first, each read when it is reached.

    Call it before the log is read: the checkpoints are bounded by the newest one published now,
    and each was published after its entries were committed, so a log read afterwards holds them
    all unless it was shortened. One published while the log is being read is left out, since the
    reader may not see its entries.
    """
    newest = directory.latest()
    return _read_published(directory, newest.size if newest is not None else -1)


def _read_published(directory: CheckpointDirectory, last: int) -> Iterator[Anchor]:
    for published in directory.published():
        if published.size > last:
            return
        try:
            note = published.read()
        except OSError as exc:  # verify_log reports it as a checkpoint that does not verify
            note = f"unreadable: {exc}"
        yield Anchor(str(published.path), published.size, note, published=True)


def tree_holds(session: Session, point: notes.Checkpoint, source: str) -> str | None:
    """None when the stored tree holds to ``point`` (a checkpoint from ``source``); else what is wrong.

    Reads the sequencer's state and the O(log n) stored nodes that give the root at ``point.size``.
    It trusts the stored nodes to stand for the entries: ``verify_log`` checks those too.
    """
    _, integrated = log_size(session)
    if integrated < point.size:
        return (
            f"the log's tree holds {integrated} entries, fewer than the {point.size} of {source}: "
            "entries at the end were deleted"
        )
    try:
        computed = read_planned(session, lambda nodes: root(nodes, point.size))
    except LookupError:
        return f"the tree's nodes for the first {point.size} entries ({source}) are missing: the tree was changed"
    if computed != point.root:
        return f"the first {point.size} entries no longer give the root of {source}: the history was changed"
    return None


def standing(session: Session, directory: CheckpointDirectory, now: datetime) -> list[str]:
    """What keeps the log from being signed or trusted right now, for ``/readyz`` (empty: nothing).

    The entry the sequencer stopped at, if it stopped (a foreign or changed entry, or a deleted
    one); and whether the stored tree holds to the newest checkpoint published outside the
    database. No paths: ``/readyz`` answers anyone.
    """
    # The folder first, the database after: a checkpoint is published once its transaction has
    # committed, so whatever is published now is in what the database shows next.
    newest = directory.latest()
    found: list[str] = []
    entries, integrated = log_size(session)
    if integrated < entries:
        row = session.execute(
            select(AuditEntry.leaf_index, AuditEntry.entry, AuditEntry.leaf_hash, AuditEntry.at)
            .where(AuditEntry.leaf_index >= integrated)
            .order_by(AuditEntry.leaf_index)
            .limit(1)
        ).first()
        if row is not None and row.leaf_index == integrated:
            problem = stored_leaf(row.entry, row.leaf_hash)[1]
            if problem is not None:
                found.append(f"the sequencer stops at position {integrated}: {problem}")
        elif row is not None and missing_for_good(row.at, now):
            found.append(f"the sequencer waits at position {integrated}: that entry is missing (deleted)")
    if newest is not None:
        try:
            point = notes.parse(newest.read())[0]
        except (OSError, notes.CheckpointInvalid):
            found.append(f"the newest published checkpoint (of {newest.size} entries) cannot be read")
        else:
            problem = tree_holds(session, point, "the newest published checkpoint")
            if problem is not None:
                found.append(problem)
    return found
