"""RFC 6962 / RFC 9162 Merkle tree maths, with no storage in it.

- ``leaf_hash(entry) = SHA-256(0x00 || entry)``, ``node_hash(l, r) = SHA-256(0x01 || l || r)``.
- The tree over n leaves splits at the largest power of two below n (RFC 6962 section 2.1).
- Stored nodes are the roots of *complete* subtrees: ``(level, index)`` covers leaves
  ``[index * 2**level, (index + 1) * 2**level)``. ``append`` says which ones a new leaf completes,
  so a sequencer stores each node once; proofs then read O(log n) nodes through a one-method
  :class:`NodeReader` (``hash_at(level, index)``).
- ``verify_inclusion`` and ``verify_consistency`` are the RFC 9162 section 2.1.3.2 / 2.1.4.2
  algorithms, for anyone who holds a proof and a checkpoint.

Written by hand because no maintained Python library offers RFC 6962 proofs over an external node
store; the algorithms follow the RFC text and the tests check them against the naive definition.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


EMPTY_ROOT = hashlib.sha256(b"").digest()


class NodeReader(Protocol):
    def hash_at(self, level: int, index: int) -> bytes:
        """The root of the complete subtree ``(level, index)``; level 0 holds the leaf hashes."""
        ...


def _split(n: int) -> int:
    """The largest power of two strictly less than ``n`` (n >= 2)."""
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def append(size: int) -> list[tuple[int, int]]:
    """The complete subtrees ``(level, index)`` that leaf number ``size`` (0-based) completes.

    Always ``(0, size)`` (the leaf itself), then one node per level for as long as the new leaf
    closes a left-right pair: the sequencer stores exactly these after adding the leaf.
    """
    nodes = [(0, size)]
    level, index = 0, size
    while index % 2 == 1:
        level, index = level + 1, index // 2
        nodes.append((level, index))
    return nodes


def subtree_hash(reader: NodeReader, start: int, end: int) -> bytes:
    """MTH of leaves ``[start, end)``, from complete subtrees: O(log n) reads."""
    if end <= start:
        return EMPTY_ROOT
    # Peel the range into maximal aligned complete subtrees, left to right, then fold from the right.
    parts: list[bytes] = []
    position = start
    while position < end:
        level = 0
        while position % (1 << (level + 1)) == 0 and position + (1 << (level + 1)) <= end:
            level += 1
        parts.append(reader.hash_at(level, position >> level))
        position += 1 << level
    result = parts[-1]
    for part in reversed(parts[:-1]):
        result = node_hash(part, result)
    return result


def root(reader: NodeReader, size: int) -> bytes:
    return subtree_hash(reader, 0, size)


def inclusion_proof(reader: NodeReader, index: int, size: int) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of ``size`` leaves (RFC 6962 PATH)."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    proof: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            proof.append(subtree_hash(reader, start + k, end))
            end = start + k
        else:
            proof.append(subtree_hash(reader, start, start + k))
            start = start + k
    return list(reversed(proof))


def consistency_proof(reader: NodeReader, old_size: int, new_size: int) -> list[bytes]:
    """The proof that the tree of ``old_size`` is a prefix of the tree of ``new_size`` (RFC 6962 PROOF)."""
    if not 0 < old_size <= new_size:
        raise ValueError(f"no consistency proof from {old_size} to {new_size}")
    if old_size == new_size:
        return []

    def subproof(m: int, start: int, end: int, complete: bool) -> list[bytes]:
        n = end - start
        if m == n:
            return [] if complete else [subtree_hash(reader, start, end)]
        k = _split(n)
        if m <= k:
            return [*subproof(m, start, start + k, complete), subtree_hash(reader, start + k, end)]
        return [*subproof(m - k, start + k, end, False), subtree_hash(reader, start, start + k)]

    return subproof(old_size, 0, new_size, True)


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], expected_root: bytes) -> bool:
    """RFC 9162 2.1.3.2: does ``proof`` show leaf hash ``leaf`` at ``index`` under ``expected_root``?"""
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == expected_root


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> bool:
    """RFC 9162 2.1.4.2: is the tree (old_size, old_root) a prefix of (new_size, new_root)?"""
    if old_size > new_size or old_size == 0:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, old_root)
    if not path:
        return False
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


class CompactRange:
    """The right edge of a growing tree: roots of its complete subtrees, largest first (O(log n) memory).

    Feeding leaf hashes in order gives the root of every prefix, which is how ``gateway audit verify``
    recomputes a whole log in one pass.
    """

    def __init__(self) -> None:
        self.size = 0
        self._peaks: list[tuple[int, bytes]] = []  # (level, hash)

    def append(self, leaf: bytes) -> None:
        level, node = 0, leaf
        while self._peaks and self._peaks[-1][0] == level:
            _, left = self._peaks.pop()
            node = node_hash(left, node)
            level += 1
        self._peaks.append((level, node))
        self.size += 1

    def root(self) -> bytes:
        if not self._peaks:
            return EMPTY_ROOT
        result = self._peaks[-1][1]
        for _, peak in reversed(self._peaks[:-1]):
            result = node_hash(peak, result)
        return result
