"""Participant certificates from the development CA: issue one (and register it), or revoke them.

``gateway keys issue`` and ``gateway keys revoke`` call these, and so does ``gateway demo`` when
its operator revokes a compromised key in the middle of the season.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy.orm import Session

from gateway.bootstrap import participant_key_dir
from gateway.errors import NotFound
from gateway.pki.devca import DevelopmentCA, IssuedCertificate, write_crl
from gateway.registry.services import get_participant, register_certificate
from gateway.settings import Settings


@dataclass(frozen=True)
class Revocation:
    revoked: dict[int, str]  # serial -> SHA-256 fingerprint (hex) of each certificate revoked now
    listed: int  # certificates on the revocation list afterwards


def issue_certificate(
    session: Session, settings: Settings, participant_id: str, now: datetime, algorithm: str = "rsa"
) -> IssuedCertificate:
    """A new key and certificate under ``keys/participants/ID/``, registered to the participant.

    Raises :class:`NotFound` for an unknown participant and :class:`ConfigurationError` for a
    broken CA (half of it missing, a wrong passphrase) or an unknown algorithm.
    """
    participant = get_participant(session, participant_id)
    ca = DevelopmentCA.ensure(settings.keys_dir, now, settings.key_passphrase)
    out = participant_key_dir(settings.keys_dir, participant.id)
    issued = ca.issue(out, participant.id, participant.name, now, algorithm, settings.key_passphrase)
    register_certificate(session, participant.id, issued.certificate.public_bytes(Encoding.PEM), now)
    return issued


def revoke_certificates(
    session: Session, settings: Settings, participant_id: str, now: datetime, fingerprint: str | None = None
) -> Revocation:
    """Put the participant's development-CA certificates (or the one whose fingerprint starts with
    ``fingerprint``) on the CA's revocation list. A running gateway refuses them within a second.

    Raises :class:`NotFound` for an unknown participant or when no certificate matches.
    """
    participant = get_participant(session, participant_id)
    ca = DevelopmentCA.ensure(settings.keys_dir, now, settings.key_passphrase)
    chosen: dict[int, str] = {}
    for record in participant.certificates:
        if fingerprint and not record.fingerprint_sha256.startswith(fingerprint.lower()):
            continue
        certificate = x509.load_pem_x509_certificate(record.pem.encode("ascii"))
        if certificate.issuer == ca.certificate.subject:
            chosen[certificate.serial_number] = record.fingerprint_sha256
    if not chosen:
        raise NotFound(f"{participant.id} has no matching certificate from the development CA")
    listed = write_crl(ca, settings.keys_dir, now, dict.fromkeys(chosen, now))
    return Revocation(chosen, listed)
