"""Checking a proof document (``/log/proof/...`` or ``gateway audit prove``) offline, against signed checkpoints.

Pure: the proof's JSON, the checkpoint notes and the gateway's public key in, a verdict out. A
proof counts only against a checkpoint whose signature verifies and whose size is the proof's.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from gateway.audit import checkpoint as notes
from gateway.audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from gateway.audit.sequencer import KEY_NAME


class ProofRejected(ValueError):
    """The proof document is malformed, or does not verify against the checkpoint(s)."""


@dataclass(frozen=True)
class Verdict:
    kind: str  # "inclusion" or "consistency"
    summary: str


def check_proof(
    document: dict[str, Any],
    public_key: ec.EllipticCurvePublicKey,
    checkpoint_note: str | None = None,
    old_checkpoint_note: str | None = None,
    entry: bytes | None = None,
) -> Verdict:
    """Check an inclusion or consistency proof document; raises :class:`ProofRejected` naming what failed.

    The notes default to those the document carries (they are signed, so they may come with it);
    ``entry``, when given, must hash to the proof's leaf hash.
    """
    if "leaf_index" in document:
        return _inclusion(document, public_key, checkpoint_note or document.get("checkpoint"), entry)
    if "first" in document:
        return _consistency(
            document,
            public_key,
            old_checkpoint_note or document.get("first_checkpoint"),
            checkpoint_note or document.get("second_checkpoint"),
        )
    raise ProofRejected("not a proof document: it has neither leaf_index (inclusion) nor first (consistency)")


def _signed(note: object, size: int, which: str, public_key: ec.EllipticCurvePublicKey) -> notes.Checkpoint:
    if not isinstance(note, str):
        raise ProofRejected(f"no signed checkpoint of {size} entries to check against: pass the {which} checkpoint")
    try:
        point = notes.verify(note, KEY_NAME, public_key)
    except notes.CheckpointInvalid as exc:
        raise ProofRejected(f"the {which} checkpoint: {exc}") from None
    if point.size != size:
        raise ProofRejected(f"the proof is about a tree of {size} entries, the {which} checkpoint signs {point.size}")
    return point


def _hashes(document: dict[str, Any]) -> list[bytes]:
    raw = document.get("hashes")
    if not isinstance(raw, list):
        raise ProofRejected("the proof has no list of hashes")
    return [_hash(value, "a proof hash") for value in raw]


def _hash(value: object, what: str) -> bytes:
    try:
        decoded = base64.b64decode(str(value), validate=True)
    except (ValueError, binascii.Error):
        decoded = b""
    if len(decoded) != 32:
        raise ProofRejected(f"{what} is not a base64 SHA-256 hash")
    return decoded


def _size(document: dict[str, Any], key: str) -> int:
    value = document.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProofRejected(f"{key} must be a whole number")
    return value


def _inclusion(
    document: dict[str, Any], public_key: ec.EllipticCurvePublicKey, note: object, entry: bytes | None
) -> Verdict:
    index, size = _size(document, "leaf_index"), _size(document, "tree_size")
    leaf = _hash(document.get("leaf_hash"), "leaf_hash")
    if entry is not None and leaf_hash(entry) != leaf:
        raise ProofRejected("the entry does not hash to the proof's leaf hash")
    point = _signed(note, size, "signed", public_key)
    if not verify_inclusion(leaf, index, size, _hashes(document), point.root):
        raise ProofRejected(f"the inclusion proof of leaf {index} does not lead to the checkpoint's root")
    return Verdict("inclusion", f"leaf {index} is in the log of {size} entries signed at {point.time.isoformat()}")


def _consistency(
    document: dict[str, Any], public_key: ec.EllipticCurvePublicKey, old_note: object, new_note: object
) -> Verdict:
    first, second = _size(document, "first"), _size(document, "second")
    old = _signed(old_note, first, "old", public_key)
    new = _signed(new_note, second, "new", public_key)
    if not verify_consistency(first, second, old.root, new.root, _hashes(document)):
        raise ProofRejected(f"the consistency proof does not show the tree of {first} entries inside that of {second}")
    return Verdict("consistency", f"the log of {first} entries is a prefix of the log of {second} entries")
