"""What the gateway accepts in a signature: algorithms by URI, and keys by type and size.

SHA-1 is refused everywhere; so is every algorithm not listed here.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod

from gateway.errors import AlgorithmNotAllowed

EXCLUSIVE_C14N = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0
ALLOWED_C14N = frozenset({EXCLUSIVE_C14N.value})
ALLOWED_DIGESTS = frozenset({DigestAlgorithm.SHA256, DigestAlgorithm.SHA384, DigestAlgorithm.SHA512})
RSA_METHODS = frozenset({SignatureMethod.RSA_SHA256, SignatureMethod.RSA_SHA384, SignatureMethod.RSA_SHA512})
ECDSA_METHODS = frozenset({SignatureMethod.ECDSA_SHA256, SignatureMethod.ECDSA_SHA384, SignatureMethod.ECDSA_SHA512})
ALLOWED_SIGNATURE_METHODS = RSA_METHODS | ECDSA_METHODS
ALLOWED_CURVES = ("secp256r1", "secp384r1")
MIN_RSA_BITS = 2048


def check_algorithms(c14n: str, signature_method: str, digests: list[str], transforms: list[str]) -> None:
    """Raise :class:`AlgorithmNotAllowed` naming the first algorithm outside the policy."""
    if c14n not in ALLOWED_C14N:
        raise AlgorithmNotAllowed(
            f"canonicalisation {c14n} is not allowed; use exclusive C14N ({EXCLUSIVE_C14N.value})"
        )
    if signature_method not in {m.value for m in ALLOWED_SIGNATURE_METHODS}:
        raise AlgorithmNotAllowed(
            f"signature method {signature_method} is not allowed; use RSA-SHA256 or ECDSA-SHA256 (or stronger)"
        )
    for digest in digests:
        if digest not in {d.value for d in ALLOWED_DIGESTS}:
            raise AlgorithmNotAllowed(f"digest {digest} is not allowed; use SHA-256 or stronger")
    for transform in transforms:
        if transform not in ALLOWED_C14N:
            raise AlgorithmNotAllowed(f"transform {transform} is not allowed; only exclusive C14N")


def check_key(key: CertificatePublicKeyTypes, signature_method: str) -> None:
    """The key must fit the signature method: RSA of 2048 bits or more, or EC on P-256/P-384."""
    if isinstance(key, rsa.RSAPublicKey):
        if signature_method not in {m.value for m in RSA_METHODS}:
            raise AlgorithmNotAllowed(f"an RSA key cannot make a {signature_method} signature")
        if key.key_size < MIN_RSA_BITS:
            raise AlgorithmNotAllowed(f"RSA keys of {key.key_size} bits are not allowed; at least {MIN_RSA_BITS}")
        return
    if isinstance(key, ec.EllipticCurvePublicKey):
        if signature_method not in {m.value for m in ECDSA_METHODS}:
            raise AlgorithmNotAllowed(f"an EC key cannot make a {signature_method} signature")
        if key.curve.name not in ALLOWED_CURVES:
            raise AlgorithmNotAllowed(f"EC curve {key.curve.name} is not allowed; use P-256")
        return
    raise AlgorithmNotAllowed(f"{type(key).__name__} keys are not allowed; RSA or EC only")
