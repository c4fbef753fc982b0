"""The payload key ring: the AES-256 keys that encrypt stored payloads, one of them current.

A folder (``Settings.payload_keys_dir``, by default ``keys/secrets/payload-keys/``)::

    20261130-3f9a1c2e.key   64 hex characters, a 256-bit key; the file name is its key id
    20270601-b71d0e94.key
    current                 the id of the key that encrypts new payloads

Every key decrypts; only the current one encrypts. Key files are written 0600 in a 0700 folder and
never committed (``keys/`` is git-ignored). A running process notices a changed ``current`` within
a second and re-reads the folder when it meets a key id it does not know, so a rotation needs no
restart. ``gateway init`` makes the first key; ``gateway payloads rotate-key`` the next ones.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from gateway.errors import ConfigurationError, NotFound, PayloadKeyMissing

log = logging.getLogger(__name__)

CURRENT = "current"
KEY_SUFFIX = ".key"
KEY_BYTES = 32  # AES-256
KEY_ID = re.compile(r"^[0-9]{8}-[0-9a-f]{8}$")
_RELOAD_SECONDS = 1.0


@dataclass(frozen=True)
class PayloadKey:
    key_id: str
    secret: bytes = field(repr=False)


@dataclass(frozen=True)
class _Loaded:
    keys: dict[str, PayloadKey]
    current: PayloadKey
    stamp: tuple[int, int]  # of the ``current`` file: (mtime_ns, inode)


class PayloadKeyRing:
    """The keys of one key ring folder, re-read when it changes. Thread-safe.

    Raises :class:`ConfigurationError` when the folder has no current key or a key file is malformed.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._checked_at = time.monotonic()
        self._loaded = _load(directory)

    @property
    def current(self) -> PayloadKey:
        """The key that encrypts new payloads."""
        if time.monotonic() - self._checked_at >= _RELOAD_SECONDS:
            with self._lock:
                self._checked_at = time.monotonic()
                if _stamp(self.directory) != self._loaded.stamp:
                    self._loaded = _load(self.directory)
        return self._loaded.current

    def get(self, key_id: str) -> PayloadKey:
        """The key ``key_id``; raises :class:`PayloadKeyMissing` when the folder does not have it."""
        found = self._loaded.keys.get(key_id)
        if found is not None:
            return found
        with self._lock:  # perhaps added since: look again (the folder is small)
            self._checked_at = time.monotonic()
            self._loaded = _load(self.directory)
        found = self._loaded.keys.get(key_id)
        if found is None:
            raise PayloadKeyMissing(
                f"payload key {key_id} is not in the key ring {self.directory}: restore it from the key backup"
            )
        return found

    def key_ids(self) -> list[str]:
        """Every known key id, oldest first (ids begin with the date they were made)."""
        return sorted(self._loaded.keys)


def create_key(directory: Path, now: datetime, activate: bool = True) -> str:
    """Write a new random key into ``directory`` (made 0700 if missing); returns its id.

    With ``activate`` it becomes the current key at once; otherwise it only decrypts until
    :func:`activate_key` (the staged rotation of several machines, see ``docs/operations.md``).
    """
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_id = f"{now:%Y%m%d}-{secrets.token_hex(4)}"
    _write_new_private(directory / f"{key_id}{KEY_SUFFIX}", secrets.token_bytes(KEY_BYTES).hex())
    if activate:
        activate_key(directory, key_id)
    return key_id


def activate_key(directory: Path, key_id: str) -> None:
    """Make the existing key ``key_id`` the current one; raises :class:`NotFound` if there is no such key."""
    path = directory / f"{key_id}{KEY_SUFFIX}"
    if not KEY_ID.match(key_id) or not path.exists():
        raise NotFound(f"no payload key {key_id} in {directory}")
    _read_key(path)  # refuse to activate a malformed key
    # Write aside and rename: a reader sees the old pointer or the new one, never half of one.
    temporary = directory / f".{CURRENT}.{secrets.token_hex(4)}"
    _write_new_private(temporary, key_id)
    os.replace(temporary, directory / CURRENT)


def _write_new_private(path: Path, line: str) -> None:
    """Create ``path`` (it must not exist) readable by the owner only, with ``line``, on disk before returning."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def ensure_key_ring(directory: Path, now: datetime) -> bool:
    """Create the first key when ``directory`` has no current key; True if one was made."""
    if (directory / CURRENT).exists():
        return False
    create_key(directory, now, activate=True)
    return True


def _stamp(directory: Path) -> tuple[int, int]:
    try:
        stat = (directory / CURRENT).stat()
    except FileNotFoundError:
        return (-1, -1)
    return (stat.st_mtime_ns, stat.st_ino)


def _read_key(path: Path) -> PayloadKey:
    text = path.read_text(encoding="ascii").strip()
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        secret = b""
    if len(secret) != KEY_BYTES:
        raise ConfigurationError(f"payload key file {path} must hold {KEY_BYTES * 2} hex characters")
    if path.stat().st_mode & 0o077:
        log.warning("payload key file %s is readable by others than its owner: chmod 600 it", path)
    return PayloadKey(path.name.removesuffix(KEY_SUFFIX), secret)


def _load(directory: Path) -> _Loaded:
    stamp = _stamp(directory)
    pointer = directory / CURRENT
    if not pointer.exists():
        raise ConfigurationError(f"no current payload key in {directory}: run `gateway init`")
    keys = {}
    for path in directory.glob(f"*{KEY_SUFFIX}"):
        if KEY_ID.match(path.name.removesuffix(KEY_SUFFIX)):
            key = _read_key(path)
            keys[key.key_id] = key
    current_id = pointer.read_text(encoding="ascii").strip()
    if current_id not in keys:
        raise ConfigurationError(f"the current payload key {current_id!r} named in {pointer} has no key file")
    return _Loaded(keys, keys[current_id], stamp)
