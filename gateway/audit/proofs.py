"""Proofs and entries as served to the outside: over HTTP (``/log/...``) and by ``gateway audit prove``.

Every answer is bounded by the latest signed checkpoint: a proof for a tree larger than the log
has signed is refused, not computed over nodes nobody has vouched for. Each proof reads its
O(log n) nodes in one query (:func:`gateway.audit.nodes.read_planned`). Hashes travel as base64
(standard alphabet, padded) in JSON, as in the checkpoint; a leaf hash may be asked for in hex
(as the receipt prints it) or base64.

Refusals: :class:`~gateway.errors.ValidationError` for an argument that can never be right
(HTTP 400, naming the argument) and :class:`~gateway.errors.NotFound` for what does not exist
(yet): no checkpoint, an unknown leaf hash, an entry the signed tree does not hold yet (HTTP 404).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.audit.merkle import consistency_proof, inclusion_proof
from gateway.audit.models import AuditCheckpoint, AuditEntry
from gateway.audit.nodes import read_planned
from gateway.errors import NotFound, ValidationError

MAX_ENTRIES = 1000  # entries per page of /log/entries
DEFAULT_ENTRIES = 100


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class InclusionProof:
    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    hashes: tuple[bytes, ...]
    checkpoint: str | None  # the signed note of exactly ``tree_size`` entries, when one was signed

    def as_json(self) -> dict[str, Any]:
        return {
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "leaf_hash": b64(self.leaf_hash),
            "hashes": [b64(h) for h in self.hashes],
            "checkpoint": self.checkpoint,
        }


@dataclass(frozen=True)
class ConsistencyProof:
    first: int
    second: int
    hashes: tuple[bytes, ...]
    first_checkpoint: str | None
    second_checkpoint: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "first": self.first,
            "second": self.second,
            "hashes": [b64(h) for h in self.hashes],
            "first_checkpoint": self.first_checkpoint,
            "second_checkpoint": self.second_checkpoint,
        }


@dataclass(frozen=True)
class EntryPage:
    start: int
    tree_size: int
    entries: tuple[bytes, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.start + len(self.entries),
            "tree_size": self.tree_size,
            "entries": [{"leaf_index": self.start + i, "entry": b64(e)} for i, e in enumerate(self.entries)],
        }


@dataclass(frozen=True)
class SignedCheckpoint:
    size: int
    root: bytes
    note: str


def latest_checkpoint(session: Session) -> SignedCheckpoint:
    """The newest signed checkpoint; raises :class:`NotFound` before the sequencer has signed one."""
    # Plain columns rather than the ORM entity: every proof starts here, and loading the entity cost
    # as much as the node query.
    row = session.execute(
        select(AuditCheckpoint.size, AuditCheckpoint.root, AuditCheckpoint.note)
        .order_by(AuditCheckpoint.id.desc())
        .limit(1)
    ).first()
    if row is None:
        raise NotFound("the audit log has no signed checkpoint yet")
    return SignedCheckpoint(row.size, row.root, row.note)


def checkpoint_of_size(session: Session, size: int) -> str | None:
    """The signed note of a checkpoint of exactly ``size`` entries, if the sequencer signed one."""
    return session.scalar(
        select(AuditCheckpoint.note).where(AuditCheckpoint.size == size).order_by(AuditCheckpoint.id.desc()).limit(1)
    )


def _tree_size(session: Session, size: int | None, name: str) -> tuple[int, SignedCheckpoint]:
    """The tree size asked for (default: the latest signed one), and the latest checkpoint."""
    latest = latest_checkpoint(session)
    if size is None:
        return latest.size, latest
    if size > latest.size:
        signed = latest.size
        raise ValidationError(
            name, f"{size} is larger than the latest signed checkpoint ({signed} entries); ask for at most {signed}"
        )
    return size, latest


def _note(session: Session, size: int, latest: SignedCheckpoint) -> str | None:
    # Most proofs are against the latest checkpoint: its note is at hand, without another query.
    return latest.note if size == latest.size else checkpoint_of_size(session, size)


def parse_leaf_hash(text: str) -> bytes:
    """A 32-byte leaf hash from hex (64 characters, as on receipts) or base64; raises :class:`ValidationError`."""
    text = text.strip()
    try:
        value = bytes.fromhex(text) if len(text) == 64 else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        value = b""
    if len(value) != 32:
        raise ValidationError("leaf_hash", "must be a SHA-256 hash: 64 hex digits or 44 base64 characters")
    return value


def inclusion(
    session: Session, index: int | None = None, size: int | None = None, leaf_hash: bytes | None = None
) -> InclusionProof:
    """The inclusion proof of the entry at ``index`` (or with ``leaf_hash``) in the tree of ``size``.

    ``size`` defaults to the latest signed checkpoint's. Raises :class:`ValidationError` or :class:`NotFound`.
    """
    if (index is None) == (leaf_hash is None):
        raise ValidationError("index", "give either the leaf index or the leaf hash")
    tree_size, latest = _tree_size(session, size, "size")
    if tree_size < 1:
        raise ValidationError("size", "a tree of 0 entries includes nothing")
    if index is not None:
        if index < 0:
            raise ValidationError("index", "must be 0 or more")
        if index >= tree_size:
            raise ValidationError("index", f"leaf {index} is not in a tree of {tree_size} entries (indexes start at 0)")
        found = index
    else:
        row = session.execute(
            select(AuditEntry.leaf_index)
            .where(AuditEntry.leaf_hash == leaf_hash)
            .order_by(AuditEntry.leaf_index)
            .limit(1)
        ).first()
        if row is None:
            raise NotFound("no entry of the log has this leaf hash")
        found = row.leaf_index
        if found >= tree_size:
            raise NotFound(
                f"the entry with this leaf hash is leaf {found}, not yet in the signed tree of {tree_size} entries; "
                "the sequencer signs a new checkpoint within seconds"
            )
    # The leaf hash is the one the tree holds (level 0), read with the proof's nodes.
    leaf, hashes = read_planned(
        session, lambda reader: (reader.hash_at(0, found), inclusion_proof(reader, found, tree_size))
    )
    return InclusionProof(found, tree_size, leaf, tuple(hashes), _note(session, tree_size, latest))


def consistency(session: Session, first: int, second: int | None = None) -> ConsistencyProof:
    """The proof that the tree of ``first`` entries is a prefix of the tree of ``second`` (default: latest).

    Raises :class:`ValidationError` or :class:`NotFound`.
    """
    second_size, latest = _tree_size(session, second, "second")
    if first < 1:
        raise ValidationError("first", "a consistency proof starts from a tree of at least 1 entry")
    if first > second_size:
        raise ValidationError("first", f"{first} is larger than the second tree ({second_size} entries)")
    hashes = read_planned(session, lambda reader: consistency_proof(reader, first, second_size))
    return ConsistencyProof(
        first,
        second_size,
        tuple(hashes),
        _note(session, first, latest),
        _note(session, second_size, latest),
    )


def entries(session: Session, start: int, end: int | None = None) -> EntryPage:
    """The canonical bytes of entries ``[start, end)``, at most :data:`MAX_ENTRIES` and within the signed tree.

    As in RFC 6962's get-entries, a range reaching past the page limit or the tree is shortened.
    Raises :class:`ValidationError` or :class:`NotFound`.
    """
    tree_size = latest_checkpoint(session).size
    if start < 0:
        raise ValidationError("start", "must be 0 or more")
    if start >= tree_size:
        raise ValidationError("start", f"{start} is past the latest signed checkpoint ({tree_size} entries)")
    if end is None:
        end = start + DEFAULT_ENTRIES
    if end <= start:
        raise ValidationError("end", "must be larger than start (the range is [start, end))")
    end = min(end, start + MAX_ENTRIES, tree_size)
    rows = session.execute(
        select(AuditEntry.leaf_index, AuditEntry.entry)
        .where(AuditEntry.leaf_index >= start, AuditEntry.leaf_index < end)
        .order_by(AuditEntry.leaf_index)
    ).all()
    if [index for index, _ in rows] != list(range(start, end)):
        raise NotFound(f"entries of [{start}, {end}) are missing from the log: run `gateway audit verify`")
    return EntryPage(start, tree_size, tuple(entry for _, entry in rows))
