"""The trust store keeps the chains it built, without keeping anything it must check each time."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from gateway.errors import CertificateExpired, CertificateRevoked, RevocationUnavailable
from gateway.security import trust
from gateway.security.trust import TrustStore
from gateway.settings import Settings
from tests.conftest import UNIVERSITY, credentials
from tests.security.variants import write_crl


def test_a_chain_is_built_once_and_then_reused(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    certificate = credentials(settings.keys_dir, UNIVERSITY).certificate
    store = TrustStore(settings.anchors, settings.crls)
    built: list[object] = []
    build = trust._verify

    def counting(*args: object) -> object:
        built.append(args)
        return build(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(trust, "_verify", counting)
    now = datetime.now(UTC)
    store.check(certificate, now)
    store.check(certificate, now + timedelta(seconds=1))
    assert len(built) == 1


def test_a_kept_chain_still_answers_to_the_clock_and_to_a_new_crl(settings: Settings) -> None:
    certificate = credentials(settings.keys_dir, UNIVERSITY).certificate
    store = TrustStore(settings.anchors, settings.crls)
    now = datetime.now(UTC)
    store.check(certificate, now)
    with pytest.raises(CertificateExpired):
        store.check(certificate, certificate.not_valid_after_utc + timedelta(seconds=1))
    write_crl(settings, [certificate.serial_number])
    time.sleep(1.1)  # the store looks at its files at most once a second
    with pytest.raises(CertificateRevoked):
        store.check(certificate, now)


def test_a_kept_chain_still_answers_to_the_crls_next_update(settings: Settings) -> None:
    certificate = credentials(settings.keys_dir, UNIVERSITY).certificate
    store = TrustStore(settings.anchors, settings.crls)
    now = datetime.now(UTC)
    store.check(certificate, now)
    [next_update] = store.crl_next_updates().values()
    store.check(certificate, next_update)  # the cached chain, at the last moment the CRL is current
    with pytest.raises(RevocationUnavailable, match="expired"):
        store.check(certificate, next_update + timedelta(seconds=1))
