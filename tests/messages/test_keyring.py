"""The payload key ring: files, permissions, the current key, staged rotation, reloading."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.errors import ConfigurationError, NotFound, PayloadKeyMissing
from gateway.messages import keyring
from gateway.messages.keyring import PayloadKeyRing, activate_key, create_key, ensure_key_ring
from gateway.settings import Settings
from tests.messages.conftest import run_cli

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def test_gateway_init_made_a_private_key_ring(settings: Settings) -> None:
    folder = settings.payload_keys_dir
    assert folder == settings.keys_dir / "secrets" / "payload-keys"
    ring = PayloadKeyRing(folder)
    [key_id] = ring.key_ids()
    assert ring.current.key_id == key_id and len(ring.current.secret) == 32
    assert keyring.KEY_ID.match(key_id)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / f"{key_id}.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((folder / "current").stat().st_mode) == 0o600
    assert ring.current.secret.hex() not in repr(ring.current)  # keys never printed
    assert ensure_key_ring(folder, NOW) is False  # idempotent: init again reuses it
    assert PayloadKeyRing(folder).key_ids() == [key_id]


def test_a_staged_key_decrypts_but_encrypts_only_once_activated(tmp_path: Path) -> None:
    assert ensure_key_ring(tmp_path / "ring", NOW) is True
    ring = PayloadKeyRing(tmp_path / "ring")
    first = ring.current.key_id
    staged = create_key(tmp_path / "ring", NOW, activate=False)
    assert staged != first and staged.startswith("20261130-")
    assert ring.get(staged).key_id == staged  # found by re-reading the folder
    assert PayloadKeyRing(tmp_path / "ring").current.key_id == first
    activate_key(tmp_path / "ring", staged)
    assert PayloadKeyRing(tmp_path / "ring").current.key_id == staged
    assert sorted(PayloadKeyRing(tmp_path / "ring").key_ids()) == sorted([first, staged])


def test_a_running_ring_follows_a_new_current_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ensure_key_ring(tmp_path, NOW)
    ring = PayloadKeyRing(tmp_path)
    old = ring.current.key_id
    new = create_key(tmp_path, NOW, activate=True)
    assert ring.current.key_id == old  # checked at most once a second
    monkeypatch.setattr(keyring, "_RELOAD_SECONDS", 0.0)
    assert ring.current.key_id == new
    assert ring.get(old).key_id == old


def test_unknown_and_broken_keys_are_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="run `gateway init`"):
        PayloadKeyRing(tmp_path)
    key_id = create_key(tmp_path, NOW)
    ring = PayloadKeyRing(tmp_path)
    with pytest.raises(PayloadKeyMissing, match="20200101-00000000 is not in the key ring"):
        ring.get("20200101-00000000")
    with pytest.raises(NotFound, match="no payload key"):
        activate_key(tmp_path, "20200101-00000000")
    (tmp_path / f"{key_id}.key").write_text("not hex\n")
    with pytest.raises(ConfigurationError, match="must hold 64 hex characters"):
        PayloadKeyRing(tmp_path)
    (tmp_path / f"{key_id}.key").unlink()
    with pytest.raises(ConfigurationError, match="has no key file"):
        PayloadKeyRing(tmp_path)


def test_staged_rotation_on_the_command_line(settings: Settings) -> None:
    first = PayloadKeyRing(settings.payload_keys_dir).current.key_id
    staged = run_cli(settings, "payloads", "rotate-key", "--stage")
    assert staged.exit_code == 0, staged.output
    [key_id] = [k for k in PayloadKeyRing(settings.payload_keys_dir).key_ids() if k != first]
    assert f"gateway payloads activate-key {key_id}" in staged.output
    status = json.loads(run_cli(settings, "payloads", "status", "--json").output)
    assert (status["current_key"], status["keys"][key_id]["current"]) == (first, False)
    activated = run_cli(settings, "payloads", "activate-key", key_id)
    assert activated.exit_code == 0, activated.output
    assert PayloadKeyRing(settings.payload_keys_dir).current.key_id == key_id
    unknown = run_cli(settings, "payloads", "activate-key", "20200101-00000000")
    assert unknown.exit_code == 1 and "no payload key 20200101-00000000" in unknown.output
    assert PayloadKeyRing(settings.payload_keys_dir).current.key_id == key_id
