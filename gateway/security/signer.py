"""The gateway's own XML signatures: receipts, forwarded messages, the gateway's answers.

Enveloped XMLDSig signatures with exclusive C14N and SHA-256, ECDSA or RSA by the gateway's key,
the gateway certificate in ``KeyInfo/X509Data``, so that ``xmlsec1 --verify`` with the CA
certificate checks them (``--id-attr:Id`` naming the signed element), and signxml, python-xmlsec
and the SDK verify them.

Written on lxml's exclusive C14N and ``cryptography`` rather than with signxml's ``XMLSigner``
because the receipt is signed on every accepted message while its audit entry's counter row is
locked (``gateway.audit.log.sequence``): signxml took ~0.9 ms a receipt, this ~0.15 ms
(bench/intake/README.md). What it writes is the structure signxml wrote (one reference to the
element's ``Id`` with the enveloped-signature and exclusive C14N transforms), so every verifier
of earlier receipts verifies these; tests verify them with signxml, xmlsec1 and python-xmlsec.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils
from lxml import etree
from lxml.builder import ElementMaker

from gateway.pki.keystore import KeyStore, PrivateKey

DS_NS = "http://www.w3.org/2000/09/xmldsig#"
EXCLUSIVE_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
_DS = ElementMaker(namespace=DS_NS, nsmap={"ds": DS_NS})

# Characters that Canonical XML writes as references (C14N 1.0, section 2.3), in text and in attributes.
_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#xD;"})
_ATTRIBUTE_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", '"': "&quot;", "\t": "&#x9;", "\n": "&#xA;", "\r": "&#xD;"}
)


def canonical_text(value: str) -> str:
    """``value`` as Canonical XML writes character data."""
    return value.translate(_TEXT_ESCAPES)


def canonical_attribute(value: str) -> str:
    """``value`` as Canonical XML writes an attribute's value (between double quotes)."""
    return value.translate(_ATTRIBUTE_ESCAPES)


def signature_method(key: PrivateKey) -> str:
    """The XML Signature method of the gateway's ``key``: ECDSA-SHA256 for an EC key, else RSA-SHA256."""
    return ECDSA_SHA256 if isinstance(key, ec.EllipticCurvePrivateKey) else RSA_SHA256


def signature_value(key: PrivateKey, data: bytes) -> str:
    """``data`` (a canonical ds:SignedInfo) signed with ``key`` by ``signature_method(key)``, as the
    text of ds:SignatureValue: base64 of the signature, for ECDSA r and s each padded to the
    curve's size (RFC 4050), not DER. The gateway's own signatures (this module's and its SOAP
    answers', ``gateway.security.response``) are all made here."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        size = (key.curve.key_size + 7) // 8
        r, s = utils.decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        raw = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    else:
        raw = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(raw).decode("ascii")


class GatewaySigner:
    """Signs elements that carry an ``Id`` attribute with the key store's key. Thread-safe."""

    def __init__(self, keys: KeyStore) -> None:
        self._key = keys.signing_key()
        self._method = signature_method(self._key)
        self._certificate = base64.b64encode(keys.certificate().public_bytes(serialization.Encoding.DER)).decode()
        # The fixed parts of a signature written in exclusive canonical form (``sign_canonical``).
        self._signed_info_head = (
            f'<ds:CanonicalizationMethod Algorithm="{EXCLUSIVE_C14N}"></ds:CanonicalizationMethod>'
            f'<ds:SignatureMethod Algorithm="{self._method}"></ds:SignatureMethod>'
        )
        self._reference_head = (
            f'<ds:Transforms><ds:Transform Algorithm="{ENVELOPED}"></ds:Transform>'
            f'<ds:Transform Algorithm="{EXCLUSIVE_C14N}"></ds:Transform></ds:Transforms>'
            f'<ds:DigestMethod Algorithm="{SHA256}"></ds:DigestMethod>'
        )
        self._key_info = (
            f"<ds:KeyInfo><ds:X509Data><ds:X509Certificate>{self._certificate}</ds:X509Certificate>"
            "</ds:X509Data></ds:KeyInfo>"
        )

    def sign_enveloped(self, element: etree._Element) -> etree._Element:
        """``element`` with a ds:Signature over it (by its ``Id``) appended as its last child.

        The element is signed in place and returned (callers use what is returned).
        """
        element_id = element.get("Id")
        if not element_id:
            raise ValueError("the element to sign needs an Id attribute")
        # The enveloped-signature transform removes the signature being made: digest before appending it.
        digest = hashlib.sha256(etree.tostring(element, method="c14n", exclusive=True)).digest()
        signed_info = _DS.SignedInfo(
            _DS.CanonicalizationMethod(Algorithm=EXCLUSIVE_C14N),
            _DS.SignatureMethod(Algorithm=self._method),
            _DS.Reference(
                _DS.Transforms(_DS.Transform(Algorithm=ENVELOPED), _DS.Transform(Algorithm=EXCLUSIVE_C14N)),
                _DS.DigestMethod(Algorithm=SHA256),
                _DS.DigestValue(base64.b64encode(digest).decode()),
                URI=f"#{element_id}",
            ),
        )
        # Exclusive C14N renders only the namespaces SignedInfo uses (ds): the same inside the signed
        # element as here on its own, which is what a verifier canonicalises.
        value = self._sign(etree.tostring(signed_info, method="c14n", exclusive=True))
        element.append(
            _DS.Signature(
                signed_info,
                _DS.SignatureValue(value),
                _DS.KeyInfo(_DS.X509Data(_DS.X509Certificate(self._certificate))),
            )
        )
        return element

    def sign_canonical(self, start_tag: str, content: str, end_tag: str, element_id: str) -> bytes:
        """An element written in exclusive canonical form, signed as ``sign_enveloped`` signs it.

        ``start_tag``, ``content`` and ``end_tag`` are the element's exclusive C14N (the caller writes
        them so: ``canonical_text``, ``canonical_attribute``, namespace declarations where C14N puts
        them); ``element_id`` is its ``Id``. Returns the element with the ds:Signature appended as
        its last child, the whole still in exclusive canonical form (UTF-8), so that it can be
        stored, sent and digested again as it is. The same signature as ``sign_enveloped``'s, with
        no tree built, copied or canonicalised: the receipt of every accepted message is signed so.
        """
        digest = base64.b64encode(hashlib.sha256(f"{start_tag}{content}{end_tag}".encode()).digest()).decode()
        signed_info = (
            f'{self._signed_info_head}<ds:Reference URI="#{canonical_attribute(element_id)}">'
            f"{self._reference_head}<ds:DigestValue>{digest}</ds:DigestValue></ds:Reference>"
        )
        # Canonicalised on its own, SignedInfo declares ds; inside the Signature, which declares it, not.
        value = self._sign(f'<ds:SignedInfo xmlns:ds="{DS_NS}">{signed_info}</ds:SignedInfo>'.encode())
        signature = (
            f'<ds:Signature xmlns:ds="{DS_NS}"><ds:SignedInfo>{signed_info}</ds:SignedInfo>'
            f"<ds:SignatureValue>{value}</ds:SignatureValue>{self._key_info}</ds:Signature>"
        )
        return f"{start_tag}{content}{signature}{end_tag}".encode()

    def _sign(self, data: bytes) -> str:
        return signature_value(self._key, data)
