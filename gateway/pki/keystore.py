"""The key store: the one way the gateway loads private keys.

:class:`PemKeyStore` reads PEM files under ``keys/`` (encrypted with ``GATEWAY_KEY_PASSPHRASE``
when one is set). A hardware module would be another :class:`KeyStore` with the same two methods.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.errors import ConfigurationError

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class KeyStore(Protocol):
    def signing_key(self) -> PrivateKey:
        """The gateway's private signing key."""
        ...

    def certificate(self) -> x509.Certificate:
        """The certificate of :meth:`signing_key`."""
        ...


class PemKeyStore:
    """The gateway's key and certificate as PEM files, loaded once."""

    def __init__(self, key_path: Path, cert_path: Path, passphrase: bytes | None = None) -> None:
        self._key = load_private_key(key_path, passphrase)
        try:
            self._certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot read the certificate {cert_path}: {exc}") from None
        if self._certificate.public_key() != self._key.public_key():
            raise ConfigurationError(f"{cert_path} is not the certificate of {key_path}")

    def signing_key(self) -> PrivateKey:
        return self._key

    def certificate(self) -> x509.Certificate:
        return self._certificate


def load_private_key(path: Path, passphrase: bytes | None = None) -> PrivateKey:
    """Load an RSA or EC private key; raises :class:`ConfigurationError` saying what is wrong."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=passphrase)
    except OSError as exc:
        raise ConfigurationError(f"cannot read the key {path}: {exc.strerror}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"cannot load the key {path}: {exc} (is GATEWAY_KEY_PASSPHRASE right?)") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ConfigurationError(f"{path} holds a {type(key).__name__}; RSA or EC keys only")
    return key


def write_private_key(path: Path, key: PrivateKey, passphrase: bytes | None = None) -> None:
    """Write ``key`` as PKCS#8 PEM readable only by the owner, encrypted when a passphrase is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
