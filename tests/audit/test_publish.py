"""The published checkpoints: one read-only file per size, never rewritten, and a new one only when it
extends the newest published one."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.audit import checkpoint as notes
from gateway.audit.anchors import published_anchors
from gateway.audit.merkle import CompactRange, leaf_hash
from gateway.audit.publish import CheckpointDirectory, PublicationRefused

KEY = ec.generate_private_key(ec.SECP256R1())


def roots(label: str, count: int) -> list[bytes]:
    """The root of every prefix of a log of ``count`` entries named by ``label``: [root of 0, root of 1, ...]."""
    tree = CompactRange()
    found = [tree.root()]
    for number in range(count):
        tree.append(leaf_hash(f"{label} {number}".encode()))
        found.append(tree.root())
    return found


def point(size: int, root: bytes) -> tuple[notes.Checkpoint, str]:
    signed = notes.Checkpoint(size, root, datetime(2026, 6, 1, 8, 0, size % 60, tzinfo=UTC))
    return signed, notes.sign(signed, "gateway", KEY)


def publish(directory: CheckpointDirectory, size: int, log: list[bytes]) -> bool:
    """What the sequencer does: check against the newest published, then write."""
    checkpoint, note = point(size, log[size])
    directory.check(checkpoint, lambda n: log[n])
    return directory.write(checkpoint, note)


def fingerprint(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``folder``: its content's digest and inode (a rewrite changes one or the other)."""
    return {
        str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_ino)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_each_checkpoint_is_a_read_only_file_named_by_its_size(tmp_path: Path) -> None:
    directory = CheckpointDirectory(tmp_path / "checkpoints")
    assert directory.latest() is None and list(directory.published()) == []
    log = roots("honest", 25_000)
    for size in (3, 9_999, 10_000, 24_999):
        assert publish(directory, size, log)
    assert [p.size for p in directory.published()] == [3, 9_999, 10_000, 24_999]
    assert [p.size for p in directory.published(start=9_999)] == [9_999, 10_000, 24_999]
    assert directory.path_of(10_000) == tmp_path / "checkpoints" / "000000010000" / "000000010000.checkpoint"
    assert directory.path_of(24_999).parent.name == "000000020000"
    latest = directory.latest()
    assert latest is not None and latest.size == 24_999
    assert notes.verify(latest.read(), "gateway", KEY.public_key()).root == log[24_999]
    assert all(os.stat(p.path).st_mode & 0o777 == 0o444 for p in directory.published())
    assert [p.name for p in (tmp_path / "checkpoints").rglob(".*")] == []  # no temporary files left


def test_a_published_checkpoint_is_never_rewritten(tmp_path: Path) -> None:
    directory = CheckpointDirectory(tmp_path)
    log = roots("honest", 20)
    publish(directory, 10, log)
    before = fingerprint(tmp_path)
    assert publish(directory, 10, log) is False  # the same tree again (signed at another moment): kept as it was
    assert fingerprint(tmp_path) == before
    forged = roots("forged", 20)
    with pytest.raises(PublicationRefused, match="another root for 10 entries"):
        directory.write(*point(10, forged[10]))  # even past the check, the link refuses the existing name
    assert fingerprint(tmp_path) == before


def test_a_checkpoint_that_does_not_extend_the_published_one_is_refused(tmp_path: Path) -> None:
    directory = CheckpointDirectory(tmp_path)
    honest, forged = roots("honest", 30), roots("forged", 30)
    publish(directory, 20, honest)
    before = fingerprint(tmp_path)
    with pytest.raises(PublicationRefused, match="the log has 15 entries, fewer than the 20 of the published"):
        publish(directory, 15, honest)
    with pytest.raises(PublicationRefused, match="the first 20 entries no longer give the root"):
        publish(directory, 30, forged)

    def missing(size: int) -> bytes:
        raise LookupError(f"audit tree node (0, {size - 1}) is missing")

    with pytest.raises(PublicationRefused, match=r"nodes for the first 20 entries .* are missing"):
        directory.check(point(30, honest[30])[0], missing)
    assert fingerprint(tmp_path) == before
    assert publish(directory, 30, honest)  # the honest log goes on


def test_an_unreadable_newest_checkpoint_stops_publication(tmp_path: Path) -> None:
    directory = CheckpointDirectory(tmp_path)
    log = roots("honest", 10)
    target = directory.path_of(9)
    target.parent.mkdir(parents=True)
    target.write_text("not a checkpoint")
    with pytest.raises(PublicationRefused, match="cannot be read"):
        publish(directory, 10, log)


def test_verification_uses_only_what_was_published_before_it_read_the_log(tmp_path: Path) -> None:
    """A checkpoint published while the log is being read covers entries the reader may not have seen:
    it is left out, rather than reported as a log shorter than published."""
    directory = CheckpointDirectory(tmp_path)
    log = roots("honest", 30)
    publish(directory, 10, log)
    anchors = published_anchors(directory)  # as verify does, before it reads the log
    publish(directory, 20, log)
    assert [a.size for a in anchors] == [10]
    assert [a.size for a in published_anchors(directory)] == [10, 20]
