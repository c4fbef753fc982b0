"""What a graduate hands a verifier: a signed grant token, a short code, and a QR code of either.

- The **token** is a compact JWS (RFC 7515), ES256 (ECDSA P-256, SHA-256) with PyJWT, header
  ``{"alg": "ES256", "typ": "grant+jwt", "kid": ...}``, claims ``iss`` (:data:`ISSUER`), ``sub``
  (the grant id), ``aud`` (the verifier's participant id), ``iat`` and ``exp`` (seconds) and
  ``jti`` (the grant id). It only *names* the grant: the database is the source of truth for
  revocation, pause, expiry and remaining uses, so the gateway checks those there, on its own
  clock. A token can be made again for a grant at any time; ECDSA signatures are randomised, so
  the text differs, but every one is equally valid.
- The **short code** (8 characters from :data:`SHORT_CODE_ALPHABET`, shown as ``ABCD-EFGH``) is
  for a counter or a phone call; it names the grant too, and is bound to the same verifier.
- The **QR code** (segno, SVG) carries either.

The signing key is ``keys/grants/token-key.pem`` (made by ``gateway init``, never committed),
dedicated to grant tokens: it signs nothing else.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import jwt
import segno
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from jwt.utils import der_to_raw_signature

from gateway.errors import AuthorisationInvalid, ConfigurationError
from gateway.pki.keystore import load_private_key, write_private_key

ISSUER = "urn:gradex:gateway"
TOKEN_TYPE = "grant+jwt"  # noqa: S105  (a JOSE "typ", not a secret)
ALGORITHM = "ES256"
CLAIMS = ("iss", "sub", "aud", "exp", "iat", "jti")
# No 0/O, 1/I/L: nothing that reads two ways on a screen or over the phone.
SHORT_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
SHORT_CODE_LENGTH = 8


def token_key_path(keys_dir: Path) -> Path:
    return keys_dir / "grants" / "token-key.pem"


def ensure_token_key(keys_dir: Path, passphrase: bytes | None = None) -> bool:
    """Generate the grant-token key (EC P-256) unless it exists; True when it was made now."""
    path = token_key_path(keys_dir)
    if path.exists():
        return False
    write_private_key(path, ec.generate_private_key(ec.SECP256R1()), passphrase)
    return True


class DeterministicES256(ECAlgorithm):
    """ES256 signing with deterministic nonces (RFC 6979): the same claims give the same token.

    PyJWT signs with a random nonce; cryptography does RFC 6979 when asked. Verification is the same.
    """

    def __init__(self) -> None:
        super().__init__(ECAlgorithm.SHA256)

    def sign(self, msg: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
        der = key.sign(msg, ec.ECDSA(self.hash_alg(), deterministic_signing=True))
        return der_to_raw_signature(der, key.curve)


_SIGNER = jwt.PyJWS(algorithms=[])
_SIGNER.register_algorithm(ALGORITHM, DeterministicES256())


@dataclass(frozen=True)
class TokenClaims:
    grant_id: str
    audience: str
    issued_at: datetime
    expires_at: datetime


class GrantTokens:
    """Issues grant tokens with the grant-token key and reads them back."""

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(key.curve, ec.SECP256R1):
            raise ConfigurationError("the grant-token key must be an EC P-256 key (ES256)")
        self._key = key
        self._public = key.public_key()
        spki = self._public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.key_id = hashlib.sha256(spki).hexdigest()[:16]

    @classmethod
    def from_keys_dir(cls, keys_dir: Path, passphrase: bytes | None = None) -> GrantTokens:
        """The key made by ``gateway init``; raises :class:`ConfigurationError` when it is missing or not EC."""
        path = token_key_path(keys_dir)
        if not path.exists():
            raise ConfigurationError(f"the grant-token key {path} is missing: run `gateway init`")
        key = load_private_key(path, passphrase)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ConfigurationError(f"{path} must hold an EC P-256 key (ES256)")
        return cls(key)

    def issue(self, grant_id: str, verifier_id: str, issued_at: datetime, expires_at: datetime) -> str:
        """The compact JWS naming ``grant_id`` for ``verifier_id``."""
        claims = {
            "iss": ISSUER,
            "sub": grant_id,
            "aud": verifier_id,
            "iat": int(issued_at.timestamp()),
            "exp": int(expires_at.timestamp()),
            "jti": grant_id,
        }
        payload = json.dumps(claims, separators=(",", ":")).encode()
        return _SIGNER.encode(payload, self._key, algorithm=ALGORITHM, headers={"typ": TOKEN_TYPE, "kid": self.key_id})

    def read(self, token: str) -> TokenClaims:
        """The claims of a token this gateway signed; raises :class:`AuthorisationInvalid` saying why not.

        Expiry is *not* judged here: the grant's row (on the gateway's clock) is the source of truth.
        """
        try:
            header = jwt.get_unverified_header(token)
            if header.get("typ") != TOKEN_TYPE:
                raise AuthorisationInvalid(f"the token is not a grant token (typ {header.get('typ')!r})")
            claims = jwt.decode(
                token,
                self._public,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={
                    "require": list(CLAIMS),
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "verify_aud": False,  # compared with the sender by the enforcement, for a specific fault
                },
            )
        except jwt.InvalidSignatureError:
            raise AuthorisationInvalid("the token's signature does not verify with the gateway's grant key") from None
        except jwt.PyJWTError as exc:
            raise AuthorisationInvalid(f"the token is not a valid grant token: {exc}") from None
        subject, audience = claims.get("sub"), claims.get("aud")
        if not isinstance(subject, str) or not isinstance(audience, str):
            raise AuthorisationInvalid("the token's sub and aud must be single strings")
        return TokenClaims(
            grant_id=subject,
            audience=audience,
            issued_at=datetime.fromtimestamp(int(claims["iat"]), UTC),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        )


def new_short_code() -> str:
    """A random short code (stored without the hyphen); about 40 bits."""
    return "".join(secrets.choice(SHORT_CODE_ALPHABET) for _ in range(SHORT_CODE_LENGTH))


def normalise_short_code(text: str) -> str | None:
    """``text`` as a stored short code (case, spaces and hyphens forgiven), or None if it is not one."""
    code = "".join(text.split()).replace("-", "").upper()
    if len(code) == SHORT_CODE_LENGTH and all(c in SHORT_CODE_ALPHABET for c in code):
        return code
    return None


def display_short_code(code: str) -> str:
    """``ABCDEFGH`` as ``ABCD-EFGH``."""
    half = SHORT_CODE_LENGTH // 2
    return f"{code[:half]}-{code[half:]}"


def qr_svg(text: str, scale: int = 4) -> str:
    """An inline SVG QR code (error correction M) of ``text``: a token or a short code."""
    return str(segno.make(text, error="m", micro=False).svg_inline(scale=scale))
