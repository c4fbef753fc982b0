"""The Merkle maths against the RFC 6962 definition, computed naively, for every small tree."""

from __future__ import annotations

import pytest

from gateway.audit.merkle import (
    EMPTY_ROOT,
    append,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)


def mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1, word for word."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = 1
    while k << 1 < len(leaves):
        k <<= 1
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


class Store:
    """What a sequencer stores: the nodes ``append`` names, as leaves arrive."""

    def __init__(self) -> None:
        self.nodes: dict[tuple[int, int], bytes] = {}
        self.size = 0
        self.reads = 0

    def add(self, entry: bytes) -> None:
        for level, index in append(self.size):
            if level == 0:
                self.nodes[(0, index)] = leaf_hash(entry)
            else:
                self.nodes[(level, index)] = node_hash(
                    self.nodes[(level - 1, 2 * index)], self.nodes[(level - 1, 2 * index + 1)]
                )
        self.size += 1

    def hash_at(self, level: int, index: int) -> bytes:
        self.reads += 1
        return self.nodes[(level, index)]


ENTRIES = [f"entry {i}".encode() for i in range(70)]


@pytest.fixture(scope="module")
def store() -> Store:
    built = Store()
    for entry in ENTRIES:
        built.add(entry)
    return built


def test_known_vector() -> None:
    # RFC 6962's empty tree, and the hash of a single empty leaf.
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"


def test_roots_match_the_definition_for_every_size(store: Store) -> None:
    for size in range(0, len(ENTRIES) + 1):
        assert root(store, size) == mth(ENTRIES[:size]), size


def test_every_inclusion_proof_verifies_and_fails_when_changed(store: Store) -> None:
    for size in range(1, 40):
        tree_root = mth(ENTRIES[:size])
        for index in range(size):
            proof = inclusion_proof(store, index, size)
            leaf = leaf_hash(ENTRIES[index])
            assert verify_inclusion(leaf, index, size, proof, tree_root), (index, size)
            assert not verify_inclusion(leaf_hash(b"forged"), index, size, proof, tree_root)
            if size > 1:
                assert not verify_inclusion(leaf, (index + 1) % size, size, proof, tree_root)
            if proof:
                broken = [proof[0][::-1], *proof[1:]]
                assert not verify_inclusion(leaf, index, size, broken, tree_root)


def test_every_consistency_proof_verifies_and_fails_when_changed(store: Store) -> None:
    for new in range(1, 40):
        new_root = mth(ENTRIES[:new])
        for old in range(1, new + 1):
            proof = consistency_proof(store, old, new)
            old_root = mth(ENTRIES[:old])
            assert verify_consistency(old, new, old_root, new_root, proof), (old, new)
            if old < new:
                assert not verify_consistency(old, new, leaf_hash(b"x"), new_root, proof)
                assert not verify_consistency(old, new, old_root, leaf_hash(b"x"), proof)


def test_proofs_read_logarithmically_many_nodes(store: Store) -> None:
    store.reads = 0
    inclusion_proof(store, 37, 70)
    assert store.reads <= 2 * 7
    store.reads = 0
    consistency_proof(store, 33, 70)
    assert store.reads <= 3 * 7


def test_append_stores_each_complete_subtree_once() -> None:
    assert append(0) == [(0, 0)]
    assert append(1) == [(0, 1), (1, 0)]
    assert append(3) == [(0, 3), (1, 1), (2, 0)]
    assert append(6) == [(0, 6)]
