"""Checking the digests and the value of a signature whose structure ``wsse`` has already checked.

What this module is given is narrow on purpose. ``wsse.read_security_header`` has found the one
ds:Signature where it must be, resolved every ``ds:Reference`` to the one element that carries its
Id (an Id used twice is refused there) and required the Body, the Timestamp and the routing header
the gateway processes among them; ``policy`` has allowed only exclusive C14N (as the
CanonicalizationMethod and as the only transform), SHA-256/384/512 digests and RSA PKCS#1 v1.5 or
ECDSA with SHA-256/384/512, and fitted the key to the method; ``dsig_schema`` has validated the
ds:Signature; ``trust`` has checked the certificate. Verifying is then, for each reference, the
exclusive C14N of the element ``wsse`` resolved (with the transform's InclusiveNamespaces
PrefixList), its digest compared in constant time with the DigestValue, then the exclusive C14N of
SignedInfo checked against the SignatureValue with the certificate's key. Nothing is looked up again
by URI, so nothing can be verified but the elements the gateway goes on to process.

Written on lxml's C14N and ``cryptography`` rather than with a library because it runs on every
message and the libraries cost several times more for the same checks. Measured in-process on the
benchmark's ~5 KB envelopes (three references, one thread, CPU time per verification, RSA-2048 /
ECDSA P-256): signxml's ``XMLVerifier``, which the gateway used before, 1.0 / 1.3 ms (it
re-serialises and re-parses the whole envelope once per reference and the Signature once more);
python-xmlsec 0.46 / 0.45 ms, 0.32 / 0.35 ms with its key kept per certificate (a context per
message, the document's Ids registered, libxmlsec1's node-set transforms); this module 0.12 /
0.17 ms, of which the bare ``cryptography`` check of the SignatureValue is 0.05 / 0.10 ms.

It accepts what signxml accepted with the gateway's configuration, and the tests hold it to
signxml's verdicts (``tests/security/test_dsig_verify.py``): a reference without transforms is
canonicalised with exclusive C14N (signxml's ``default_reference_c14n_method`` as the gateway set
it, not the recommendation's inclusive default), and a ``ds:KeyValue`` or
``dsig11:DEREncodedKeyValue`` beside the certificate must be the certificate's key. Where signxml
failed with an exception other than its own (a second exclusive C14N transform, a
DEREncodedKeyValue of another key type: answered as ``INTERNAL_ERROR``), this module follows the
recommendation as libxmlsec1 does (the second transform canonicalises the octets of the first) or
refuses (``SIGNATURE_INVALID``). A PrefixList is split at any white space, as the recommendation
says (signxml split it at spaces only); more than one ``ec:InclusiveNamespaces`` in one transform
is refused as ambiguous (signxml read the first). ``#default`` in a PrefixList, which lxml cannot
pass on to libxml2, stays with python-xmlsec (``default_prefix``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import cast

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from lxml import etree

from gateway.errors import SignatureInvalid
from gateway.security.policy import ALLOWED_DIGESTS, ECDSA_METHODS, RSA_METHODS
from gateway.security.wsse import NS, SecurityHeader, SignedReference
from gateway.xmlparse import hardened_parser

EXC_C14N_NS = "http://www.w3.org/2001/10/xml-exc-c14n#"
DSIG11_NS = "http://www.w3.org/2009/xmldsig11#"
_NS = {**NS, "ec": EXC_C14N_NS, "dsig11": DSIG11_NS}
# The policy's algorithms by URI (any other never gets here: AlgorithmNotAllowed before), each to
# its hash: the enum names end in it (SHA256, RSA_SHA256, ECDSA_SHA256).
_DIGESTS = {digest.value: digest.name.lower() for digest in ALLOWED_DIGESTS}
_HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}
_RSA_METHODS = {method.value: _HASHES[method.name.rsplit("_", 1)[1].lower()] for method in RSA_METHODS}
_ECDSA_METHODS = {method.value: _HASHES[method.name.rsplit("_", 1)[1].lower()] for method in ECDSA_METHODS}
_CURVE_URIS = {"secp256r1": "urn:oid:1.2.840.10045.3.1.7", "secp384r1": "urn:oid:1.3.132.0.34"}


def verify_signature(header: SecurityHeader, certificate: x509.Certificate) -> None:
    """Check every reference's digest and the signature value of ``header`` with ``certificate``'s key.

    ``header`` comes from ``wsse.read_security_header`` and ``certificate`` passed ``policy.check_key``
    for ``header.signature_method``. Raises :class:`SignatureInvalid` naming the first reference whose
    digest does not match, or saying that the signature value does not.
    """
    signed_info = header.signature.find("ds:SignedInfo", NS)
    assert signed_info is not None  # wsse found exactly one
    # Every ds:Reference of SignedInfo, each with the element wsse resolved it to; not the routing
    # header that a gw:RoutingDigest in the Timestamp binds (wsse compared that digest itself).
    signed = [reference for reference in header.references if reference.reference.getparent() is signed_info]
    if len(signed) != header.reference_count:
        raise SignatureInvalid(f"the signature has {header.reference_count} references; {len(signed)} were resolved")
    for reference in signed:
        _check_digest(reference)
    method = signed_info.find("ds:CanonicalizationMethod", NS)
    assert method is not None
    canonical = _exclusive_c14n(signed_info, _prefix_list(method))
    key = certificate.public_key()
    try:
        _verify_value(key, header.signature_method, header.signature_value, canonical)
    except InvalidSignature:
        raise SignatureInvalid("the signature does not verify: the SignatureValue does not match SignedInfo") from None
    _check_key_values(header.signature, key)


def _check_digest(reference: SignedReference) -> None:
    transforms = reference.reference.findall("ds:Transforms/ds:Transform", NS)
    data = _exclusive_c14n(reference.element, _prefix_list(transforms[0]) if transforms else None)
    for transform in transforms[1:]:  # each further one canonicalises the octets of the one before
        data = _exclusive_c14n(etree.fromstring(data, parser=hardened_parser()), _prefix_list(transform))
    digest = hashlib.new(_DIGESTS[reference.digest_method], data).digest()
    if not hmac.compare_digest(digest, base64.b64decode(reference.digest_value)):
        raise SignatureInvalid(f"the signature does not verify: the digest of reference {reference.uri} does not match")


def _exclusive_c14n(element: etree._Element, prefixes: list[str] | None) -> bytes:
    return etree.tostring(element, method="c14n", exclusive=True, with_comments=False, inclusive_ns_prefixes=prefixes)


def _prefix_list(parent: etree._Element) -> list[str] | None:
    """The InclusiveNamespaces PrefixList of a Transform or CanonicalizationMethod, if it has one."""
    found = parent.findall("ec:InclusiveNamespaces", _NS)
    if len(found) > 1:
        raise SignatureInvalid("a canonicalisation may carry one ec:InclusiveNamespaces, not several")
    if not found or found[0].get("PrefixList") is None:
        return None
    return found[0].get("PrefixList", "").split()


def _verify_value(key: object, method: str, value: bytes, data: bytes) -> None:
    """Raises ``InvalidSignature``; ``check_key`` made sure that the key fits the method."""
    if isinstance(key, rsa.RSAPublicKey):
        key.verify(value, data, padding.PKCS1v15(), _RSA_METHODS[method])
        return
    key = cast(ec.EllipticCurvePublicKey, key)
    # XML Signature's ECDSA value is r and s, each padded to the curve's size (RFC 4050), not DER.
    size = (key.curve.key_size + 7) // 8
    if len(value) != 2 * size:
        raise SignatureInvalid(f"the ECDSA SignatureValue must be {2 * size} bytes, not {len(value)}")
    der = utils.encode_dss_signature(int.from_bytes(value[:size], "big"), int.from_bytes(value[size:], "big"))
    key.verify(der, data, ec.ECDSA(_ECDSA_METHODS[method]))


def _check_key_values(signature: etree._Element, key: object) -> None:
    """A ds:KeyValue or dsig11:DEREncodedKeyValue in KeyInfo beside the certificate must be its key.

    The key used is always the certificate's; a KeyInfo naming another key is ambiguous, and refused.
    """
    der = signature.find("ds:KeyInfo/dsig11:DEREncodedKeyValue", _NS)
    if der is not None and _spki(key) != _base64(der):
        raise SignatureInvalid("the DEREncodedKeyValue in KeyInfo is not the signing certificate's key")
    value = signature.find("ds:KeyInfo/ds:KeyValue", _NS)
    if value is not None and not _is_key(value, key):
        raise SignatureInvalid("the KeyValue in KeyInfo is not the signing certificate's key")


def _is_key(value: etree._Element, key: object) -> bool:
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        modulus, exponent = value.find("ds:RSAKeyValue/ds:Modulus", _NS), value.find("ds:RSAKeyValue/ds:Exponent", _NS)
        return (
            modulus is not None
            and exponent is not None
            and int.from_bytes(_base64(modulus), "big") == numbers.n
            and int.from_bytes(_base64(exponent), "big") == numbers.e
        )
    if isinstance(key, ec.EllipticCurvePublicKey):
        curve = value.find("dsig11:ECKeyValue/dsig11:NamedCurve", _NS)
        point = value.find("dsig11:ECKeyValue/dsig11:PublicKey", _NS)
        return (
            curve is not None
            and point is not None
            and curve.get("URI") == _CURVE_URIS.get(key.curve.name)
            and _base64(point) == key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        )
    return False


def _spki(key: object) -> bytes:
    return cast(rsa.RSAPublicKey, key).public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _base64(element: etree._Element) -> bytes:
    try:
        return base64.b64decode("".join((element.text or "").split()), validate=True)
    except ValueError:
        raise SignatureInvalid(f"the {etree.QName(element).localname} in KeyInfo is not valid base64") from None
