"""Checkpoints: the signed statement "the log has N entries and this root", as a small text note.

In the style of the transparency-dev checkpoint (a C2SP signed note)::

    graduate-exchange-gateway/audit/v1        <- origin
    1024                                      <- tree size
    3q2+7w...=                                <- root hash, base64
    time 2026-06-01T08:00:00Z                 <- extension line: when it was signed
                                              <- blank line
    — gateway yzkhJkYwRQIh...                 <- signature line: key name, base64(key id || signature)

The key id is the first 4 bytes of SHA-256(key name || 0x0A || 0x02 || SubjectPublicKeyInfo DER);
0x02 marks an ECDSA P-256 / SHA-256 signature (DER) over the note text (everything up to and
including the blank line's preceding newline). Pure but for :func:`checkpoint_public_key`: signing
takes a key, verifying a public key.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.errors import ConfigurationError

ORIGIN = "graduate-exchange-gateway/audit/v1"
ECDSA_SHA256 = b"\x02"
DASH = "\u2014"


@dataclass(frozen=True)
class Checkpoint:
    size: int
    root: bytes
    time: datetime
    origin: str = ORIGIN

    def body(self) -> str:
        """The signed text: origin, size, root, extension lines, each ending in a newline."""
        stamp = self.time.isoformat().replace("+00:00", "Z")
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\ntime {stamp}\n"


def key_id(name: str, public_key: ec.EllipticCurvePublicKey) -> bytes:
    spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(name.encode() + b"\n" + ECDSA_SHA256 + spki).digest()[:4]


def sign(checkpoint: Checkpoint, name: str, key: ec.EllipticCurvePrivateKey) -> str:
    """The signed note for ``checkpoint``."""
    body = checkpoint.body()
    signature = key.sign(body.encode(), ec.ECDSA(hashes.SHA256()))
    blob = base64.b64encode(key_id(name, key.public_key()) + signature).decode()
    return f"{body}\n{DASH} {name} {blob}\n"


def checkpoint_public_key(certificate: Path) -> ec.EllipticCurvePublicKey:
    """The key that verifies checkpoints, from the gateway's certificate (PEM) at ``certificate``.

    Raises :class:`~gateway.errors.ConfigurationError` when it cannot be read or is not an EC key.
    """
    try:
        public_key = x509.load_pem_x509_certificate(certificate.read_bytes()).public_key()
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read the gateway certificate {certificate}: {exc}") from None
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise ConfigurationError("checkpoints are ECDSA-signed: the gateway certificate must carry an EC key")
    return public_key


class CheckpointInvalid(ValueError):
    """A note that is not a well-formed checkpoint, or whose signature does not verify."""


def parse(note: str, origin: str = ORIGIN) -> tuple[Checkpoint, str, str]:
    """The checkpoint in ``note`` without checking its signature, the signed text and the signature lines.

    For notes the gateway itself wrote and keeps (the published directory); anything from outside
    goes through :func:`verify`. Raises :class:`CheckpointInvalid` when the note is malformed.
    """
    body, separator, signatures = note.partition("\n\n")
    if not separator:
        raise CheckpointInvalid("a checkpoint has its text, a blank line, then signature lines")
    lines = body.split("\n")
    if len(lines) < 3 or lines[0] != origin:
        raise CheckpointInvalid(f"the checkpoint's origin must be {origin!r}")
    try:
        size = int(lines[1])
        root = base64.b64decode(lines[2], validate=True)
    except ValueError:
        raise CheckpointInvalid("the tree size or the root hash is malformed") from None
    times = [line.removeprefix("time ") for line in lines[3:] if line.startswith("time ")]
    if size < 0 or len(root) != 32 or len(times) != 1:
        raise CheckpointInvalid("a checkpoint needs a size, a 32-byte root and one time line")
    try:
        time = datetime.fromisoformat(times[0].replace("Z", "+00:00"))
    except ValueError:
        raise CheckpointInvalid("the checkpoint's time line is malformed") from None
    return Checkpoint(size, root, time, origin), body, signatures


def verify(note: str, name: str, public_key: ec.EllipticCurvePublicKey, origin: str = ORIGIN) -> Checkpoint:
    """The checkpoint in ``note`` if ``name``'s signature on it verifies; raises :class:`CheckpointInvalid`."""
    checkpoint, body, signatures = parse(note, origin)
    wanted = key_id(name, public_key)
    for line in signatures.strip("\n").split("\n"):
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != DASH or parts[1] != name:
            continue
        try:
            blob = base64.b64decode(parts[2], validate=True)
        except ValueError:
            raise CheckpointInvalid("the checkpoint's signature line is not base64") from None
        if blob[:4] != wanted:
            continue
        try:
            public_key.verify(blob[4:], (body + "\n").encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise CheckpointInvalid("the checkpoint's signature does not verify") from None
        return checkpoint
    raise CheckpointInvalid(f"no signature by {name} on the checkpoint")
