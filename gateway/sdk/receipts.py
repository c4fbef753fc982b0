"""Checking the gateway's signed receipt, on the agency's side.

A receipt is good when its enveloped signature verifies, covers the whole ``gw:Receipt`` (by its
Id), was made with a certificate issued to the gateway that chains to a trust anchor, and, when
the sender passes what it sent, names exactly the digests of the parts the sender signed.

The gateway's enveloped signatures (receipts, deliveries, delivery receipts, verification
answers) are checked with python-xmlsec (libxmlsec1, the library zeep's signature plugins use),
after this module has checked their shape: the one ``ds:Signature`` is the element's own child,
with one ``ds:Reference`` to the element's ``Id`` whose transforms are the enveloped-signature
transform and exclusive C14N, in the algorithms the gateway allows; xmlsec is then told to apply
no other transform. Every agency checks one of these per message it sends or receives: signxml's
``XMLVerifier``, used until December 2026, took about 1.2 ms of CPU for a 7.5 KB ``gw:Delivery``,
this about 0.4 ms (bench/delivery/README.md), and the trust anchors are read once per set of
files (the store re-reads them when they change) instead of once per check.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from lxml import etree

from gateway.bootstrap import GATEWAY_ID
from gateway.errors import GatewayError
from gateway.intake.catalog import GATEWAY_NS, SOAP_ENV_NS
from gateway.intake.envelope import split_envelope
from gateway.security.policy import check_algorithms
from gateway.security.signer import ENVELOPED
from gateway.security.trust import TrustStore
from gateway.security.wsse import DS_NS, WSSE_NS, WSU_ID, WSU_NS, read_security_header
from gateway.xmlparse import parse_untrusted

NS = {"gw": GATEWAY_NS, "ds": DS_NS}


class ReceiptInvalid(GatewayError):
    """The gateway's receipt does not verify or does not match what was sent."""


@dataclass(frozen=True)
class VerifiedReceipt:
    message_id: str
    status: str
    received_at: str
    digests: dict[str, str]  # part name -> base64 digest the gateway acknowledges
    xml: bytes


def verify_gateway_signed(
    element: etree._Element, tag: str, anchor_files: Sequence[Path], now: datetime | None = None
) -> etree._Element:
    """Verify the gateway's enveloped signature on ``element`` (a ``tag`` with an ``Id``).

    Returns ``element``, whose signature covers all of it (read facts from what is returned);
    raises :class:`ReceiptInvalid` unless the signature covers the whole element and was made with
    a certificate issued to the gateway (``serialNumber=gateway``) that chains to a trust anchor.
    """
    name = etree.QName(tag).localname
    element_id = element.get("Id")
    if element.tag != tag or not element_id:
        raise ReceiptInvalid(f"expected a {name} with an Id")
    if _UNSIGNED_NODES(element):
        # Exclusive C14N leaves comments out of what is signed: ``<gw:Sender>1211<!---->0108</gw:Sender>``
        # verifies as ``12110108``, and a reader of the element's text would see ``1211``. The
        # gateway writes neither comments nor processing instructions.
        raise ReceiptInvalid(f"the {name} holds a comment or a processing instruction, which the gateway never writes")
    signatures = element.findall("ds:Signature", NS)
    if len(signatures) != 1:
        raise ReceiptInvalid(f"the {name} carries no gateway signature of its own (or more than one)")
    signature = signatures[0]
    key_info_cert = signature.findtext("ds:KeyInfo/ds:X509Data/ds:X509Certificate", namespaces=NS)
    if not key_info_cert:
        raise ReceiptInvalid(f"the {name} carries no gateway signature with its certificate")
    _check_enveloped_shape(signature, element_id)
    try:
        certificate = x509.load_der_x509_certificate(base64.b64decode("".join(key_info_cert.split())))
    except ValueError:
        raise ReceiptInvalid(f"the certificate of the {name}'s signature cannot be read") from None
    _check_gateway_certificate(certificate, anchor_files, now)
    _xmlsec_verify(signature, certificate, [element], ("Id", None))
    return element


_UNSIGNED_NODES = etree.XPath("boolean(descendant::comment() | descendant::processing-instruction())")


def _check_enveloped_shape(signature: etree._Element, element_id: str) -> None:
    """One reference, to the signed element itself, with the transforms the gateway writes
    (enveloped signature, then exclusive C14N), in the algorithms it allows."""
    signed_info = signature.find("ds:SignedInfo", NS)
    references = signed_info.findall("ds:Reference", NS) if signed_info is not None else []
    if signed_info is None or len(references) != 1:
        raise ReceiptInvalid("the gateway's signature must hold one reference")
    reference = references[0]
    if reference.get("URI") != f"#{element_id}":
        raise ReceiptInvalid("the gateway's signature does not cover the whole element")
    transforms = [t.get("Algorithm", "") for t in reference.iterfind("ds:Transforms/ds:Transform", NS)]
    if len(transforms) != 2 or transforms[0] != ENVELOPED:
        raise ReceiptInvalid("the gateway's signature must be enveloped, then exclusive C14N")
    try:
        check_algorithms(
            _attr(signed_info, "CanonicalizationMethod"),
            _attr(signed_info, "SignatureMethod"),
            [_attr(reference, "DigestMethod")],
            transforms[1:],
        )
    except GatewayError as exc:
        raise ReceiptInvalid(f"the gateway's signature uses an algorithm the gateway does not: {exc}") from None


def _check_gateway_certificate(
    certificate: x509.Certificate, anchor_files: Sequence[Path], now: datetime | None
) -> None:
    """A certificate issued to the gateway that chains to a trust anchor at ``now``."""
    names = certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    if not names or names[0].value != GATEWAY_ID:
        raise ReceiptInvalid("the element is not signed with a gateway certificate")
    try:
        _trust_store(tuple(anchor_files)).check(certificate, now or datetime.now(UTC))
    except GatewayError as exc:
        raise ReceiptInvalid(f"the gateway's certificate is not trusted: {exc}") from None


def verify_receipt(
    receipt: etree._Element,
    anchor_files: Sequence[Path],
    sent_digests: dict[str, str] | None = None,
    now: datetime | None = None,
) -> VerifiedReceipt:
    """Verify ``receipt`` (a ``gw:Receipt`` element); raises :class:`ReceiptInvalid`."""
    signed = verify_gateway_signed(receipt, f"{{{GATEWAY_NS}}}Receipt", anchor_files, now)
    digests = {
        part.get("name", ""): part.findtext("ds:Reference/ds:DigestValue", namespaces=NS) or ""
        for part in signed.iterfind("gw:SignedParts/gw:Part", NS)
    }
    if sent_digests is not None:
        for name, digest in sent_digests.items():
            if digests.get(name) != digest:
                raise ReceiptInvalid(f"the receipt acknowledges a different {name} than the one sent")
    return VerifiedReceipt(
        message_id=signed.findtext("gw:MessageId", namespaces=NS) or "",
        status=signed.findtext("gw:Status", namespaces=NS) or "",
        received_at=signed.findtext("gw:ReceivedAt", namespaces=NS) or "",
        digests=digests,
        xml=etree.tostring(receipt),
    )


def sent_digests(envelope: etree._Element) -> dict[str, str]:
    """The digests a signed envelope's signature holds, by part (Body, Timestamp, Routing)."""
    # Work on a fresh parse: a tree that xmlsec signed in place may hold stale lxml proxies.
    root = parse_untrusted(etree.tostring(envelope)).getroot()
    header = read_security_header(root, split_envelope(root))
    return {r.part: r.digest_value for r in header.references}


def verify_signed_response(envelope: etree._Element, anchor_files: Sequence[Path], now: datetime | None = None) -> None:
    """Verify the gateway's WS-Security signature on a whole SOAP response (an answer or a fault).

    Raises :class:`ReceiptInvalid` unless the Header's ``wsse:Security`` holds one ``ds:Signature``
    whose references are exactly the response's Body and the Security header's Timestamp (by
    ``wsu:Id``), in the algorithms the gateway allows, made with the certificate of its
    ``wsse:BinarySecurityToken``: a gateway certificate (``serialNumber=gateway``) that chains to a
    trust anchor. Checked with xmlsec, the library zeep's own signature plugins use.
    """
    security = envelope.find(f"{{{SOAP_ENV_NS}}}Header/{{{WSSE_NS}}}Security")
    body = envelope.find(f"{{{SOAP_ENV_NS}}}Body")
    signatures = security.findall("ds:Signature", NS) if security is not None else []
    timestamp = security.find(f"{{{WSU_NS}}}Timestamp") if security is not None else None
    if security is None or body is None or len(signatures) != 1 or timestamp is None:
        raise ReceiptInvalid("the response carries no gateway WS-Security signature with a Timestamp")
    signature = signatures[0]
    signed_info = signature.find("ds:SignedInfo", NS)
    if signed_info is None:
        raise ReceiptInvalid("the response's signature has no SignedInfo")
    references = signed_info.findall("ds:Reference", NS)
    wanted = {body.get(WSU_ID): body, timestamp.get(WSU_ID): timestamp}
    if None in wanted or sorted(r.get("URI", "")[1:] for r in references) != sorted(map(str, wanted)):
        raise ReceiptInvalid("the response's signature does not cover exactly its Body and Timestamp")
    try:
        check_algorithms(
            _attr(signed_info, "CanonicalizationMethod"),
            _attr(signed_info, "SignatureMethod"),
            [_attr(r, "DigestMethod") for r in references],
            [t.get("Algorithm", "") for r in references for t in r.iterfind("ds:Transforms/ds:Transform", NS)],
        )
    except GatewayError as exc:
        raise ReceiptInvalid(f"the response's signature uses an algorithm the gateway does not: {exc}") from None
    token_uri = signature.find(f"ds:KeyInfo/{{{WSSE_NS}}}SecurityTokenReference/{{{WSSE_NS}}}Reference", NS)
    token = next(
        (
            t
            for t in security.iterfind(f"{{{WSSE_NS}}}BinarySecurityToken")
            if token_uri is not None and f"#{t.get(WSU_ID)}" == token_uri.get("URI")
        ),
        None,
    )
    if token is None or not token.text:
        raise ReceiptInvalid("the response's signature names no certificate in a BinarySecurityToken")
    try:
        certificate = x509.load_der_x509_certificate(base64.b64decode("".join(token.text.split())))
    except ValueError:
        raise ReceiptInvalid("the certificate of the response's signature cannot be read") from None
    if any(_UNSIGNED_NODES(element) for element in wanted.values()):
        raise ReceiptInvalid("the response's Body or Timestamp holds a comment or a processing instruction")
    _check_gateway_certificate(certificate, anchor_files, now)
    _xmlsec_verify(signature, certificate, list(wanted.values()), ("Id", WSU_NS))


# What xmlsec may apply (``xmlsec.constants``' Transform names): the gateway's algorithms and no
# other (no XPath, XSLT or SHA-1, whatever a signature names), checked again by libxmlsec1 after
# ``check_algorithms``.
_REFERENCE_TRANSFORMS = ("Enveloped", "ExclC14N", "Sha256", "Sha384", "Sha512")
_SIGNATURE_TRANSFORMS = ("ExclC14N", "RsaSha256", "RsaSha384", "RsaSha512", "EcdsaSha256", "EcdsaSha384", "EcdsaSha512")


def _xmlsec_verify(
    signature: etree._Element,
    certificate: x509.Certificate,
    signed: list[etree._Element],
    id_attribute: tuple[str, str | None],
) -> None:
    """Check ``signature`` with ``certificate``'s key, its references resolved to the ``signed``
    elements (by Id) alone. Raises :class:`ReceiptInvalid`.

    Only the ``signed`` elements' Ids are registered, so a reference can reach nothing else; an Id
    that another element of the document carries as an ID already (``xml:id``) is refused.
    """
    context = xmlsec.SignatureContext()
    name, namespace = id_attribute
    try:
        for element in signed:
            context.register_id(element, name, namespace)
    except xmlsec.Error:
        raise ReceiptInvalid("an Id of the gateway's signed element is used twice in the document") from None
    for transform in _REFERENCE_TRANSFORMS:
        context.enable_reference_transform(getattr(xmlsec.constants, f"Transform{transform}"))
    for transform in _SIGNATURE_TRANSFORMS:
        context.enable_signature_transform(getattr(xmlsec.constants, f"Transform{transform}"))
    context.set_enabled_key_data([])  # the key below only: nothing is read from KeyInfo
    context.key = _xmlsec_key(certificate.public_bytes(serialization.Encoding.PEM))
    try:
        context.verify(signature)
    except xmlsec.Error:
        raise ReceiptInvalid("the gateway's signature does not verify") from None


@functools.lru_cache(maxsize=8)
def _xmlsec_key(pem: bytes) -> xmlsec.Key:
    """The gateway certificate's key for xmlsec, loaded once per certificate (a key is not changed by verifying)."""
    return xmlsec.Key.from_memory(pem, xmlsec.constants.KeyDataFormatCertPem, None)


@functools.lru_cache(maxsize=8)
def _trust_store(anchor_files: tuple[Path, ...]) -> TrustStore:
    """One trust store per set of anchor files: it reads them once, and again when they change."""
    return TrustStore(anchor_files, ())


def _attr(parent: etree._Element, child: str) -> str:
    found = parent.find(f"ds:{child}", NS)
    return found.get("Algorithm", "") if found is not None else ""
