"""The development PKI: a local CA that issues the gateway's and participants' certificates.

For development, tests and demonstrations only (the README of ``keys/`` says so too). Certificates
name the participant's unified social credit code in the subject's ``serialNumber`` attribute
(OID 2.5.4.5), which is how the verification stage ties a certificate to a sender.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.errors import ConfigurationError
from gateway.pki.keystore import PrivateKey, load_private_key, write_private_key

CA_VALIDITY = timedelta(days=3650)
LEAF_VALIDITY = timedelta(days=730)


@dataclass(frozen=True)
class IssuedCertificate:
    key_path: Path
    cert_path: Path
    certificate: x509.Certificate


@dataclass(frozen=True)
class DevelopmentCA:
    key: PrivateKey
    certificate: x509.Certificate
    cert_path: Path

    @classmethod
    def ensure(cls, keys_dir: Path, now: datetime, passphrase: bytes | None = None) -> DevelopmentCA:
        """Load the CA under ``keys_dir/ca``, creating it on first use (idempotent)."""
        key_path = keys_dir / "ca" / "ca.key.pem"
        cert_path = keys_dir / "ca" / "ca.cert.pem"
        if key_path.exists() and cert_path.exists():
            key = load_private_key(key_path, passphrase)
            return cls(key, x509.load_pem_x509_certificate(cert_path.read_bytes()), cert_path)
        if key_path.exists() or cert_path.exists():
            raise ConfigurationError(f"half a development CA in {key_path.parent}: remove it or restore both files")
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Graduate Exchange Gateway (development)"),
                x509.NameAttribute(NameOID.COMMON_NAME, "Graduate Exchange Development CA"),
            ]
        )
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        write_private_key(key_path, key, passphrase)
        _write_public(cert_path, certificate.public_bytes(serialization.Encoding.PEM))
        return cls(key, certificate, cert_path)

    def issue(
        self,
        out_dir: Path,
        subject_id: str,
        common_name: str,
        now: datetime,
        algorithm: str = "rsa",
        passphrase: bytes | None = None,
        server_name: str | None = None,
    ) -> IssuedCertificate:
        """Issue a key and certificate for ``subject_id`` into ``out_dir`` (``key.pem``, ``cert.pem``).

        ``algorithm`` is ``rsa`` (2048 bits, the widest interoperability) or ``ec`` (P-256).
        """
        key: PrivateKey
        if algorithm == "rsa":
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif algorithm == "ec":
            key = ec.generate_private_key(ec.SECP256R1())
        else:
            raise ConfigurationError(f"algorithm must be rsa or ec, not {algorithm!r}")
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.SERIAL_NUMBER, subject_id),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, common_name),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            ]
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(min(now + LEAF_VALIDITY, self.certificate.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=True,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
        )
        if server_name:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(server_name)]), critical=False
            ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        certificate = builder.sign(self.key, hashes.SHA256())
        key_path = out_dir / "key.pem"
        cert_path = out_dir / "cert.pem"
        write_private_key(key_path, key, passphrase)
        _write_public(cert_path, certificate.public_bytes(serialization.Encoding.PEM))
        return IssuedCertificate(key_path, cert_path, certificate)


CRL_VALIDITY = timedelta(days=30)


def crl_path(keys_dir: Path) -> Path:
    return keys_dir / "ca" / "crl.pem"


def write_crl(ca: DevelopmentCA, keys_dir: Path, now: datetime, revoke: dict[int, datetime] | None = None) -> int:
    """Write the CA's CRL with every serial already on it plus ``revoke`` (serial -> when); returns the count.

    Idempotent: revoking a revoked serial keeps its first revocation date.
    """
    path = crl_path(keys_dir)
    entries: dict[int, datetime] = {}
    if path.exists():
        for revoked in x509.load_pem_x509_crl(path.read_bytes()):
            entries[revoked.serial_number] = revoked.revocation_date_utc
    for serial, when in (revoke or {}).items():
        entries.setdefault(serial, when)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now - timedelta(minutes=5))
        .next_update(now + CRL_VALIDITY)
    )
    for serial, when in sorted(entries.items()):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
        )
    crl = builder.sign(ca.key, hashes.SHA256())
    _write_public(path, crl.public_bytes(serialization.Encoding.PEM))
    return len(entries)


def _write_public(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
