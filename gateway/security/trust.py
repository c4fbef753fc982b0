"""Trust anchors and revocation: does a certificate chain to a CA we trust, and is it still good?

Anchors are PEM bundles (the development CA by default); each CA publishes a CRL (PEM) that the
store reads and re-reads when the file changes, so ``gateway keys revoke`` takes effect in a
running gateway within a second. Chain building uses ``cryptography.x509.verification``.

Revocation fails closed. A store given CRL files (the gateway always is: ``Settings.crls``) needs,
for every CA of a chain, a CRL from that CA that is current (``now`` before its nextUpdate);
otherwise revocation cannot be checked and the certificate is refused with
:class:`RevocationUnavailable`, never accepted. A CRL file that is missing, unreadable or not signed
by an anchor counts as no CRL. :meth:`TrustStore.revocation_problems` says what is wrong (for
start-up and ``/readyz``). A store without CRL files (the SDK, which checks only the gateway's own
certificate against the CA it was given) checks no revocation.

The chain built for a certificate is kept per loaded set of anchors and CRLs (a reload starts an
empty cache), keyed by the certificate's SHA-256 fingerprint and the intermediates offered with
it, together with what the loaded set says of it: whether it may sign, whether a CA of the chain
revoked it, and until when the chain and its CRLs are valid. Those answers cannot change until the
files do, so a cached chain costs a dictionary look-up and two comparisons with ``now``.
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

from gateway.errors import (
    CertificateExpired,
    CertificateRevoked,
    CertificateUntrusted,
    ConfigurationError,
    RevocationUnavailable,
)

_RELOAD_SECONDS = 1.0
_CHAINS_KEPT = 4096  # certificates whose chain is remembered per loaded trust set; beyond that, none are added


@dataclass(frozen=True)
class _Crl:
    path: Path
    crl: x509.CertificateRevocationList
    next_update: datetime  # read once: the property parses the CRL on every access


@dataclass(frozen=True)
class _Chain:
    """A built chain and what the loaded trust set says of it (none of which changes until a reload)."""

    certificates: tuple[x509.Certificate, ...]  # leaf first
    valid_from: datetime  # the latest notBefore of the chain
    valid_until: datetime  # the earliest notAfter of the chain
    revoked: str | None  # why the chain is revoked, if a CA of it revoked a certificate of it
    revocation_until: datetime | None  # the earliest nextUpdate of the CRLs it needs (None: none needed)
    revocation_gap: str | None  # a CA of the chain without a usable CRL


@dataclass(frozen=True)
class _Loaded:
    anchors: tuple[x509.Certificate, ...]
    crls: dict[bytes, _Crl]  # keyed by the DER of the issuer name
    stamp: tuple[float, ...]
    checks_revocation: bool
    problems: tuple[str, ...] = ()  # files that are missing, unreadable or (CRLs) signed by no anchor
    # verified chains: (fingerprint, intermediates' fingerprints) -> chain
    chains: dict[tuple[bytes, tuple[bytes, ...]], _Chain] = field(default_factory=dict)


class TrustStore:
    """The trust anchors and CRLs, reloaded when their files change.

    Raises :class:`ConfigurationError` when an anchor file is not a PEM bundle at construction; CRL
    problems are reported by :meth:`revocation_problems` and refuse the certificates they concern.
    """

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

        Raises :class:`CertificateExpired`, :class:`CertificateUntrusted`, :class:`CertificateRevoked`
        or :class:`RevocationUnavailable` (no current CRL from a CA of the chain).
        """
        loaded = self._current()
        key = (
            certificate.fingerprint(hashes.SHA256()),
            tuple(c.fingerprint(hashes.SHA256()) for c in intermediates),
        )
        chain = loaded.chains.get(key)
        if chain is None or not chain.valid_from <= now <= chain.valid_until:
            chain = _verify(loaded, certificate, now, intermediates)
            if len(loaded.chains) < _CHAINS_KEPT:
                loaded.chains[key] = chain
        if chain.revoked is not None:
            raise CertificateRevoked(chain.revoked)
        if chain.revocation_gap is not None:
            raise RevocationUnavailable(chain.revocation_gap)
        if chain.revocation_until is not None and now > chain.revocation_until:
            raise RevocationUnavailable(
                f"the revocation list of a CA of the signing certificate expired at {chain.revocation_until} "
                "(the gateway operator must publish a current one)"
            )

    def revocation_problems(self, now: datetime) -> list[str]:
        """Why revocation cannot be checked for some certificates at ``now`` (empty when it can for all).

        Cheap enough for every readiness probe: no file is read unless one changed.
        """
        loaded = self._current()
        if not loaded.checks_revocation:
            return []
        problems = list(loaded.problems)
        for anchor in loaded.anchors:
            found = loaded.crls.get(anchor.subject.public_bytes())
            if found is None:
                problems.append(f"no revocation list from the CA {anchor.subject.rfc4514_string()}")
            elif now > found.next_update:
                problems.append(f"the revocation list {found.path} expired at {found.next_update}")
        return problems

    def crl_next_updates(self) -> dict[Path, datetime]:
        """Each loaded CRL file and its nextUpdate (how soon it must be replaced)."""
        return {found.path: found.next_update for found in self._current().crls.values()}

    def _current(self) -> _Loaded:
        if time.monotonic() - self._checked_at < _RELOAD_SECONDS:
            return self._loaded
        with self._lock:
            self._checked_at = time.monotonic()
            if self._stamp() != self._loaded.stamp:
                try:
                    self._loaded = self._load()
                except ConfigurationError as exc:  # an anchor file broken while serving: trust nothing until fixed
                    self._loaded = _Loaded((), {}, self._stamp(), bool(self._crl_files), (str(exc),))
            return self._loaded

    def _stamp(self) -> tuple[float, ...]:
        return tuple(p.stat().st_mtime if p.exists() else -1.0 for p in (*self._anchor_files, *self._crl_files))

    def _load(self) -> _Loaded:
        stamp = self._stamp()
        anchors: list[x509.Certificate] = []
        problems: list[str] = []
        for path in self._anchor_files:
            if path.exists():
                try:
                    anchors.extend(x509.load_pem_x509_certificates(path.read_bytes()))
                except ValueError as exc:
                    raise ConfigurationError(f"trust anchor file {path} is not a PEM bundle: {exc}") from None
        by_subject = {a.subject.public_bytes(): a for a in anchors}
        crls: dict[bytes, _Crl] = {}
        for path in self._crl_files:
            try:
                crl = x509.load_pem_x509_crl(path.read_bytes())
            except FileNotFoundError:
                problems.append(f"the revocation list {path} is missing")
                continue
            except (OSError, ValueError) as exc:
                problems.append(f"the revocation list {path} cannot be read as a PEM CRL: {exc}")
                continue
            issuer = by_subject.get(crl.issuer.public_bytes())
            if issuer is None or not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
                problems.append(f"the revocation list {path} is not signed by any trust anchor")
                continue
            if crl.next_update_utc is None:  # RFC 5280 requires it: without one, staleness cannot be told
                problems.append(f"the revocation list {path} has no nextUpdate")
                continue
            crls[crl.issuer.public_bytes()] = _Crl(path, crl, crl.next_update_utc)
        return _Loaded(tuple(anchors), crls, stamp, bool(self._crl_files), tuple(problems))


def _verify(
    loaded: _Loaded, certificate: x509.Certificate, now: datetime, intermediates: Sequence[x509.Certificate]
) -> _Chain:
    """Everything about ``certificate`` that needs more than a comparison: validity, use, path, revocation."""
    if now < certificate.not_valid_before_utc:
        raise CertificateExpired(f"the signing certificate is valid only from {certificate.not_valid_before_utc}")
    if now > certificate.not_valid_after_utc:
        raise CertificateExpired(f"the signing certificate expired at {certificate.not_valid_after_utc}")
    _check_signing_use(certificate)
    if not loaded.anchors:
        raise CertificateUntrusted("the gateway has no trust anchors configured")
    verifier = (
        PolicyBuilder()
        .store(Store(list(loaded.anchors)))
        .time(now)
        .extension_policies(ee_policy=ExtensionPolicy.permit_all(), ca_policy=ExtensionPolicy.webpki_defaults_ca())
        .build_client_verifier()
    )
    try:
        chain = tuple(verifier.verify(certificate, list(intermediates)).chain)
    except VerificationError as exc:
        raise CertificateUntrusted(
            f"the signing certificate ({certificate.subject.rfc4514_string()}) does not chain to a trust anchor: {exc}"
        ) from None
    revoked: str | None = None
    gap: str | None = None
    until: datetime | None = None
    for issued, issuer in itertools.pairwise(chain):
        found = loaded.crls.get(issuer.subject.public_bytes())
        if found is None:
            if loaded.checks_revocation and gap is None:
                gap = f"the gateway holds no revocation list from the CA {issuer.subject.rfc4514_string()}"
            continue
        if revoked is None and found.crl.get_revoked_certificate_by_serial_number(issued.serial_number) is not None:
            revoked = f"certificate serial {issued.serial_number:x} ({issued.subject.rfc4514_string()}) is revoked"
        if until is None or found.next_update < until:
            until = found.next_update
    return _Chain(
        certificates=chain,
        valid_from=max(c.not_valid_before_utc for c in chain),
        valid_until=min(c.not_valid_after_utc for c in chain),
        revoked=revoked,
        revocation_until=until,
        revocation_gap=gap,
    )


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
