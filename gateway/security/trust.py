"""Trust anchors and revocation: does a certificate chain to a CA we trust, and is it still good?

Anchors are PEM bundles (the development CA by default); each CA may publish a CRL (PEM) that the
store reads and re-reads when the file changes, so ``gateway keys revoke`` takes effect in a
running gateway within a second. Chain building uses ``cryptography.x509.verification``.

The chain built for a certificate is kept per loaded set of anchors and CRLs (a reload starts an
empty cache), keyed by the certificate's SHA-256 fingerprint and the intermediates offered with
it; it is reused only while ``now`` lies inside the validity of every certificate of the chain.
The validity, key usage and revocation of every certificate of the chain are still checked on
every call: the cache only saves the path building.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.verification import ExtensionPolicy, PolicyBuilder, Store, VerificationError

from gateway.errors import CertificateExpired, CertificateRevoked, CertificateUntrusted, ConfigurationError

_RELOAD_SECONDS = 1.0
_CHAINS_KEPT = 4096  # certificates whose chain is remembered per loaded trust set; beyond that, none are added


@dataclass(frozen=True)
class _Loaded:
    anchors: tuple[x509.Certificate, ...]
    crls: dict[bytes, x509.CertificateRevocationList]  # keyed by the DER of the issuer name
    stamp: tuple[float, ...]
    # verified chains: (fingerprint, intermediates' fingerprints) -> chain, leaf first
    chains: dict[tuple[bytes, tuple[bytes, ...]], tuple[x509.Certificate, ...]] = field(default_factory=dict)


class TrustStore:
    """The trust anchors and CRLs, reloaded when their files change."""

    def __init__(self, anchor_files: Sequence[Path], crl_files: Sequence[Path]) -> None:
        self._anchor_files = tuple(anchor_files)
        self._crl_files = tuple(crl_files)
        self._lock = threading.Lock()
        self._checked_at = 0.0
        self._loaded = self._load()

    @property
    def anchors(self) -> tuple[x509.Certificate, ...]:
        return self._current().anchors

    def check(
        self, certificate: x509.Certificate, now: datetime, intermediates: Sequence[x509.Certificate] = ()
    ) -> None:
        """Raise unless ``certificate`` is valid at ``now``, chains to an anchor, may sign and is not revoked.

        Raises :class:`CertificateExpired`, :class:`CertificateUntrusted` or :class:`CertificateRevoked`.
        """
        if now < certificate.not_valid_before_utc:
            raise CertificateExpired(f"the signing certificate is valid only from {certificate.not_valid_before_utc}")
        if now > certificate.not_valid_after_utc:
            raise CertificateExpired(f"the signing certificate expired at {certificate.not_valid_after_utc}")
        _check_signing_use(certificate)
        loaded = self._current()
        if not loaded.anchors:
            raise CertificateUntrusted("the gateway has no trust anchors configured")
        key = (
            certificate.fingerprint(hashes.SHA256()),
            tuple(c.fingerprint(hashes.SHA256()) for c in intermediates),
        )
        chain = loaded.chains.get(key)
        if chain is None or not all(c.not_valid_before_utc <= now <= c.not_valid_after_utc for c in chain):
            chain = self._build_chain(loaded, certificate, now, intermediates)
            if len(loaded.chains) < _CHAINS_KEPT:
                loaded.chains[key] = chain
        for issued, issuer in itertools.pairwise(chain):
            crl = loaded.crls.get(issuer.subject.public_bytes())
            if crl is not None and crl.get_revoked_certificate_by_serial_number(issued.serial_number) is not None:
                raise CertificateRevoked(
                    f"certificate serial {issued.serial_number:x} ({issued.subject.rfc4514_string()}) is revoked"
                )

    @staticmethod
    def _build_chain(
        loaded: _Loaded, certificate: x509.Certificate, now: datetime, intermediates: Sequence[x509.Certificate]
    ) -> tuple[x509.Certificate, ...]:
        verifier = (
            PolicyBuilder()
            .store(Store(list(loaded.anchors)))
            .time(now)
            .extension_policies(ee_policy=ExtensionPolicy.permit_all(), ca_policy=ExtensionPolicy.webpki_defaults_ca())
            .build_client_verifier()
        )
        try:
            return tuple(verifier.verify(certificate, list(intermediates)).chain)
        except VerificationError as exc:
            raise CertificateUntrusted(
                f"the signing certificate ({certificate.subject.rfc4514_string()}) "
                f"does not chain to a trust anchor: {exc}"
            ) from None

    def _current(self) -> _Loaded:
        if time.monotonic() - self._checked_at < _RELOAD_SECONDS:
            return self._loaded
        with self._lock:
            self._checked_at = time.monotonic()
            if self._stamp() != self._loaded.stamp:
                self._loaded = self._load()
            return self._loaded

    def _stamp(self) -> tuple[float, ...]:
        return tuple(p.stat().st_mtime if p.exists() else -1.0 for p in (*self._anchor_files, *self._crl_files))

    def _load(self) -> _Loaded:
        stamp = self._stamp()
        anchors: list[x509.Certificate] = []
        for path in self._anchor_files:
            if path.exists():
                try:
                    anchors.extend(x509.load_pem_x509_certificates(path.read_bytes()))
                except ValueError as exc:
                    raise ConfigurationError(f"trust anchor file {path} is not a PEM bundle: {exc}") from None
        by_subject = {a.subject.public_bytes(): a for a in anchors}
        crls: dict[bytes, x509.CertificateRevocationList] = {}
        for path in self._crl_files:
            if not path.exists():
                continue
            try:
                crl = x509.load_pem_x509_crl(path.read_bytes())
            except ValueError as exc:
                raise ConfigurationError(f"CRL file {path} is not a PEM CRL: {exc}") from None
            issuer = by_subject.get(crl.issuer.public_bytes())
            if issuer is None or not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
                raise ConfigurationError(f"CRL {path} is not signed by any trust anchor")
            crls[crl.issuer.public_bytes()] = crl
        return _Loaded(tuple(anchors), crls, stamp)


def _check_signing_use(certificate: x509.Certificate) -> None:
    try:
        basic = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
        if basic.ca:
            raise CertificateUntrusted("a CA certificate may not sign messages")
    except x509.ExtensionNotFound:
        pass
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not (usage.digital_signature or usage.content_commitment):
        raise CertificateUntrusted("the certificate's key usage does not allow signatures")
