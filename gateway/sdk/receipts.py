"""Checking the gateway's signed receipt, on the agency's side.

A receipt is good when its enveloped signature verifies, covers the whole ``gw:Receipt`` (by its
Id), was made with a certificate issued to the gateway that chains to a trust anchor, and, when
the sender passes what it sent, names exactly the digests of the parts the sender signed.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml.exceptions import SignXMLException
from signxml.verifier import SignatureConfiguration, XMLVerifier

from gateway.bootstrap import GATEWAY_ID
from gateway.errors import GatewayError
from gateway.intake.catalog import GATEWAY_NS, SOAP_ENV_NS
from gateway.intake.envelope import split_envelope
from gateway.security.policy import ALLOWED_DIGESTS, ALLOWED_SIGNATURE_METHODS, EXCLUSIVE_C14N, check_algorithms
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

    Returns the signed element as verified (read facts from it only); raises :class:`ReceiptInvalid`
    unless the signature covers the whole element and was made with a certificate issued to the
    gateway (``serialNumber=gateway``) that chains to a trust anchor.
    """
    key_info_cert = element.findtext("ds:Signature/ds:KeyInfo/ds:X509Data/ds:X509Certificate", namespaces=NS)
    if not key_info_cert:
        raise ReceiptInvalid(f"the {etree.QName(tag).localname} carries no gateway signature with its certificate")
    certificate = x509.load_der_x509_certificate(base64.b64decode("".join(key_info_cert.split())))
    names = certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    if not names or names[0].value != GATEWAY_ID:
        raise ReceiptInvalid("the element is not signed with a gateway certificate")
    moment = now or datetime.now(UTC)
    try:
        TrustStore(tuple(anchor_files), ()).check(certificate, moment)
    except GatewayError as exc:
        raise ReceiptInvalid(f"the gateway's certificate is not trusted: {exc}") from None
    config = SignatureConfiguration(
        location="./",
        expect_references=1,
        signature_methods=ALLOWED_SIGNATURE_METHODS,
        digest_algorithms=ALLOWED_DIGESTS,
        verification_time=moment,
        default_reference_c14n_method=EXCLUSIVE_C14N,
    )
    try:
        result = XMLVerifier().verify(element, x509_cert=certificate, id_attribute="Id", expect_config=config)
    except SignXMLException as exc:
        raise ReceiptInvalid(f"the gateway's signature does not verify: {exc}") from None
    assert not isinstance(result, list)  # expect_references=1 gives one result
    signed = result.signed_xml  # see what is signed: read the facts from the verified copy only
    if signed is None or signed.tag != tag or signed.get("Id") != element.get("Id"):
        raise ReceiptInvalid("the gateway's signature does not cover the whole element")
    return signed


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
    import xmlsec

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
        (t for t in security.iterfind(f"{{{WSSE_NS}}}BinarySecurityToken") if token_uri is not None
         and f"#{t.get(WSU_ID)}" == token_uri.get("URI")),
        None,
    )
    if token is None or not token.text:
        raise ReceiptInvalid("the response's signature names no certificate in a BinarySecurityToken")
    certificate = x509.load_der_x509_certificate(base64.b64decode("".join(token.text.split())))
    names = certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    if not names or names[0].value != GATEWAY_ID:
        raise ReceiptInvalid("the response is not signed with a gateway certificate")
    try:
        TrustStore(tuple(anchor_files), ()).check(certificate, now or datetime.now(UTC))
    except GatewayError as exc:
        raise ReceiptInvalid(f"the gateway's certificate is not trusted: {exc}") from None
    context = xmlsec.SignatureContext()
    for element in wanted.values():
        context.register_id(element, "Id", WSU_NS)
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    context.key = xmlsec.Key.from_memory(pem, xmlsec.KeyFormat.CERT_PEM, None)  # type: ignore[attr-defined]
    try:
        context.verify(signature)
    except xmlsec.Error:
        raise ReceiptInvalid("the gateway's signature on the response does not verify") from None


def _attr(parent: etree._Element, child: str) -> str:
    found = parent.find(f"ds:{child}", NS)
    return found.get("Algorithm", "") if found is not None else ""
