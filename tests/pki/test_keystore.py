"""The key store: keys written encrypted with GATEWAY_KEY_PASSPHRASE, loaded only with it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.bootstrap import gateway_key_paths, initialise
from gateway.clock import FixedClock
from gateway.errors import ConfigurationError
from gateway.pki.keystore import PemKeyStore
from gateway.settings import Settings


def test_keys_are_encrypted_with_the_passphrase(tmp_path: Path) -> None:
    settings = Settings.from_env({"GATEWAY_KEY_PASSPHRASE": "correct horse"}, base_dir=tmp_path)
    initialise(settings, FixedClock(datetime(2026, 6, 1, tzinfo=UTC)))
    key_path, cert_path = gateway_key_paths(settings.keys_dir)
    assert b"ENCRYPTED PRIVATE KEY" in key_path.read_bytes()
    assert b"ENCRYPTED PRIVATE KEY" in (settings.keys_dir / "ca" / "ca.key.pem").read_bytes()
    assert (key_path.stat().st_mode & 0o777) == 0o600
    store = PemKeyStore(key_path, cert_path, b"correct horse")
    assert store.certificate().public_key() == store.signing_key().public_key()
    with pytest.raises(ConfigurationError, match="GATEWAY_KEY_PASSPHRASE"):
        PemKeyStore(key_path, cert_path, b"wrong")
    with pytest.raises(ConfigurationError):
        PemKeyStore(key_path, cert_path, None)


def test_without_a_passphrase_keys_are_plain_but_private(tmp_path: Path) -> None:
    settings = Settings.from_env({}, base_dir=tmp_path)
    initialise(settings, FixedClock(datetime(2026, 6, 1, tzinfo=UTC)))
    key_path, _ = gateway_key_paths(settings.keys_dir)
    assert key_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert (key_path.stat().st_mode & 0o777) == 0o600


def test_a_certificate_that_is_not_the_keys_is_refused(tmp_path: Path) -> None:
    settings = Settings.from_env({}, base_dir=tmp_path)
    initialise(settings, FixedClock(datetime(2026, 6, 1, tzinfo=UTC)))
    key_path, _ = gateway_key_paths(settings.keys_dir)
    with pytest.raises(ConfigurationError, match="is not the certificate of"):
        PemKeyStore(key_path, settings.keys_dir / "ca" / "ca.cert.pem")
