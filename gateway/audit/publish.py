"""Signed checkpoints published outside the database: a directory of notes, each written once.

The database keeps every checkpoint too, but whoever can write the database can delete the newest
entries together with the checkpoints that cover them, and the log would still verify. So the
sequencer also writes each checkpoint it signs into this directory (``GATEWAY_CHECKPOINT_DIR``,
default ``data/checkpoints``), which the database writer cannot reach; witnesses fetch it over HTTP
(``/log/checkpoints/...``) and ``gateway audit verify`` checks the log against it.

Layout: ``<dir>/<first size of the shard>/<size>.checkpoint``, both 12 digits, zero-padded, a
shard per 10,000 sizes, so that no folder grows past 10,000 files and ``ls`` sorts by size.

Append-only, and refusing to fork:

- :meth:`CheckpointDirectory.check`, before the sequencer commits a new checkpoint: its tree must
  be consistent with the newest published one (at least as large, and its first N entries give
  the published root). Otherwise :class:`PublicationRefused`, and the sequencer signs nothing.
- :meth:`CheckpointDirectory.write`, after the commit: the note goes to a temporary file, is
  flushed to disk, made read-only and then hard-linked to its final name, which fails when the
  name exists: an older checkpoint is never rewritten, and a reader sees a whole note or none.

Written by hand: a few lines of the standard library (``os.link`` refuses an existing name); the
library that offered no-overwrite atomic writes (``atomicwrites``) is no longer maintained.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from gateway.audit import checkpoint as notes

SHARD = 10_000
DIGITS = 12
SUFFIX = ".checkpoint"
_NAME = re.compile(r"[0-9]{12}")  # a shard's folder; a note is that and SUFFIX


class PublicationRefused(RuntimeError):
    """A checkpoint the published history does not allow: the log was shortened or rewritten."""


@dataclass(frozen=True)
class PublishedNote:
    size: int
    path: Path

    def read(self) -> str:
        return self.path.read_text(encoding="utf-8", errors="replace")


class CheckpointDirectory:
    """The published checkpoints under ``path`` (which need not exist yet)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def path_of(self, size: int) -> Path:
        shard = size // SHARD * SHARD
        return self.path / f"{shard:0{DIGITS}d}" / f"{size:0{DIGITS}d}{SUFFIX}"

    def note(self, size: int) -> str | None:
        """The published note of ``size`` entries, or None."""
        if not 0 <= size < 10**DIGITS:
            return None
        try:
            return self.path_of(size).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def _shards(self) -> list[str]:
        try:
            return sorted(name for name in os.listdir(self.path) if _NAME.fullmatch(name))
        except FileNotFoundError:
            return []

    def _sizes_in(self, shard: str) -> list[int]:
        try:
            names = os.listdir(self.path / shard)
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(int(name[:DIGITS]) for name in names if name.endswith(SUFFIX) and _NAME.fullmatch(name[:DIGITS]))

    def latest(self) -> PublishedNote | None:
        """The newest published checkpoint (the largest size), or None when nothing is published."""
        for shard in reversed(self._shards()):
            sizes = self._sizes_in(shard)
            if sizes:
                return PublishedNote(sizes[-1], self.path_of(sizes[-1]))
        return None

    def published(self, start: int = 0) -> Iterator[PublishedNote]:
        """Every published checkpoint of ``start`` entries or more, smallest first, read lazily."""
        for shard in self._shards():
            if int(shard) + SHARD <= start:
                continue
            for size in self._sizes_in(shard):
                if size >= start:
                    yield PublishedNote(size, self.path_of(size))

    def check(self, point: notes.Checkpoint, root_at: Callable[[int], bytes]) -> None:
        """Raise :class:`PublicationRefused` unless ``point`` extends the newest published checkpoint.

        ``root_at(n)`` is the root of the first ``n`` entries of the tree ``point`` was computed
        from; it may raise ``LookupError`` (the tree's nodes are missing), which is refused too.
        """
        newest = self.latest()
        if newest is None:
            return
        try:
            previous = notes.parse(newest.read())[0]
        except (OSError, notes.CheckpointInvalid) as exc:
            raise PublicationRefused(f"the newest published checkpoint {newest.path} cannot be read: {exc}") from None
        if previous.size > point.size:
            raise PublicationRefused(
                f"the log has {point.size} entries, fewer than the {previous.size} of the published checkpoint "
                f"{newest.path}: entries at the end were deleted"
            )
        try:
            same = root_at(previous.size) == previous.root
        except LookupError as exc:
            raise PublicationRefused(
                f"the tree's nodes for the first {previous.size} entries (the published checkpoint "
                f"{newest.path}) are missing: {exc}"
            ) from None
        if not same:
            raise PublicationRefused(
                f"the first {previous.size} entries no longer give the root of the published checkpoint "
                f"{newest.path}: the history was rewritten"
            )

    def write(self, point: notes.Checkpoint, note: str) -> bool:
        """Publish ``note`` (the signed ``point``); False when that size was already published with that root.

        Raises :class:`PublicationRefused` when a different checkpoint of that size is published
        already, and ``OSError`` when the file cannot be written.
        """
        target = self.path_of(point.size)
        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(note)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temporary, 0o444)  # public, and nobody's to change
            try:
                os.link(temporary, target)
            except FileExistsError:
                try:
                    existing = notes.parse(target.read_text(encoding="utf-8"))[0]
                except (OSError, UnicodeDecodeError, notes.CheckpointInvalid) as exc:
                    raise PublicationRefused(f"{target} exists and cannot be read: {exc}") from None
                if existing.root != point.root:
                    raise PublicationRefused(
                        f"{target} publishes another root for {point.size} entries: the history was rewritten"
                    ) from None
                return False
            _sync_folder(target.parent)
            return True
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)


def _sync_folder(folder: Path) -> None:
    """Make the new name itself durable (a crash after the link must not lose the file)."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
