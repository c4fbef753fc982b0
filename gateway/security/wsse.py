"""Reading a WS-Security 1.1 header (OASIS SOAP Message Security, X.509 Token Profile).

This module finds, without verifying anything yet, the one Signature, the one Timestamp and the
signing certificate, and resolves every reference of the signature to the one element it names.
It refuses the structures that signature-wrapping attacks rely on: a second Security header, a
second Signature anywhere, an Id used twice, a signed Body or routing header that is not the one
the gateway processes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import cast

from cryptography import x509
from lxml import etree

from gateway.errors import AlgorithmNotAllowed, SignatureInvalid, SignatureMissing, TimestampStale
from gateway.intake.catalog import GATEWAY_NS
from gateway.intake.envelope import EnvelopeParts
from gateway.security.policy import check_algorithms

WSSE_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
X509_V3 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"
BASE64_BINARY = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"

SECURITY = f"{{{WSSE_NS}}}Security"
TIMESTAMP = f"{{{WSU_NS}}}Timestamp"
SIGNATURE = f"{{{DS_NS}}}Signature"
WSU_ID = f"{{{WSU_NS}}}Id"
ROUTING_DIGEST = f"{{{GATEWAY_NS}}}RoutingDigest"
SHA256_URI = "http://www.w3.org/2001/04/xmlenc#sha256"
NS = {"ds": DS_NS, "wsse": WSSE_NS, "wsu": WSU_NS}
# Each reference costs a canonicalisation of what it names, each transform another: bounded, far
# above what any stack signs (WSS4J with WS-Addressing signs about ten parts, with one transform each).
MAX_REFERENCES = 16
MAX_TRANSFORMS = 2


@dataclass(frozen=True)
class SignedReference:
    """One ds:Reference of the signature and the element it resolves to."""

    part: str  # "Body", "Timestamp", "Routing" or "other"
    uri: str
    element: etree._Element
    reference: etree._Element
    digest_method: str
    digest_value: str


@dataclass(frozen=True)
class SecurityHeader:
    security: etree._Element
    signature: etree._Element
    timestamp: etree._Element
    certificate: x509.Certificate
    signature_method: str
    references: tuple[SignedReference, ...]
    signature_value: bytes
    reference_count: int  # ds:Reference elements in SignedInfo (a bound routing header adds none)


def element_id(element: etree._Element) -> str | None:
    """The element's ``wsu:Id`` or, as node-soap writes it, its unqualified ``Id``."""
    return element.get(WSU_ID) or element.get("Id")


def read_security_header(root: etree._Element, parts: EnvelopeParts) -> SecurityHeader:
    """The parts of the message's WS-Security header, each reference resolved.

    Raises :class:`SignatureMissing`, :class:`SignatureInvalid`, :class:`TimestampStale` (no
    Timestamp) or :class:`~gateway.errors.AlgorithmNotAllowed`.
    """
    securities = [child for child in parts.header if child.tag == SECURITY]
    if not securities:
        raise SignatureMissing("the SOAP Header has no wsse:Security header")
    if len(securities) > 1:
        raise SignatureInvalid("the SOAP Header has more than one wsse:Security header")
    security = securities[0]
    signatures = list(root.iter(SIGNATURE))
    if not signatures:
        raise SignatureMissing("the wsse:Security header has no ds:Signature")
    if len(signatures) > 1:
        raise SignatureInvalid(f"the message holds {len(signatures)} ds:Signature elements; exactly one is allowed")
    signature = signatures[0]
    if signature.getparent() is not security:
        raise SignatureInvalid("the ds:Signature must be a child of the wsse:Security header")
    timestamps = list(root.iter(TIMESTAMP))
    if not timestamps:
        raise TimestampStale("the wsse:Security header has no wsu:Timestamp")
    if len(timestamps) > 1 or timestamps[0].getparent() is not security:
        raise SignatureInvalid("exactly one wsu:Timestamp is allowed, as a child of the wsse:Security header")
    timestamp = timestamps[0]
    _check_timestamp_values(timestamp)

    ids = _unique_ids(root)
    signed_info = _one(signature, "ds:SignedInfo")
    c14n = _one(signed_info, "ds:CanonicalizationMethod").get("Algorithm", "")
    signature_method = _one(signed_info, "ds:SignatureMethod").get("Algorithm", "")
    reference_elements = signed_info.findall("ds:Reference", NS)
    if len(reference_elements) > MAX_REFERENCES:
        raise SignatureInvalid(
            f"the signature has {len(reference_elements)} references; the gateway accepts at most {MAX_REFERENCES}"
        )
    for reference in reference_elements:
        if len(reference.findall("ds:Transforms/ds:Transform", NS)) > MAX_TRANSFORMS:
            raise SignatureInvalid(f"a signature reference has more than {MAX_TRANSFORMS} transforms")
    check_algorithms(
        c14n,
        signature_method,
        [_one(r, "ds:DigestMethod").get("Algorithm", "") for r in reference_elements],
        [t.get("Algorithm", "") for r in reference_elements for t in r.findall("ds:Transforms/ds:Transform", NS)],
    )
    wanted = {"Body": parts.body, "Timestamp": timestamp, "Routing": parts.routing}
    references = []
    for reference in reference_elements:
        uri = reference.get("URI", "")
        if not uri.startswith("#") or uri[1:] not in ids:
            raise SignatureInvalid(f"signature reference {uri!r} does not name an element of the message by Id")
        element = ids[uri[1:]]
        part = next((name for name, node in wanted.items() if node is element), "other")
        references.append(
            SignedReference(
                part=part,
                uri=uri,
                element=element,
                reference=reference,
                digest_method=_one(reference, "ds:DigestMethod").get("Algorithm", ""),
                digest_value=_base64_text(_one(reference, "ds:DigestValue"), "ds:DigestValue"),
            )
        )
    covered = {r.part for r in references}
    if "Routing" not in covered and "Timestamp" in covered:
        bound = _routing_bound_by_timestamp(timestamp, parts.routing)
        if bound is not None:
            references.append(bound)
            covered.add("Routing")
    missing = [name for name in wanted if name not in covered]
    if missing:
        raise SignatureInvalid(
            "the signature must cover the soap:Body, the wsu:Timestamp and the gw:Routing header "
            f"the gateway processes; it does not cover: {', '.join(missing)}"
        )
    value = base64.b64decode(_base64_text(_one(signature, "ds:SignatureValue"), "ds:SignatureValue"))
    return SecurityHeader(
        security=security,
        signature=signature,
        timestamp=timestamp,
        certificate=_signing_certificate(signature, security, ids),
        signature_method=signature_method,
        references=tuple(references),
        signature_value=value,
        reference_count=len(reference_elements),
    )


def routing_digest(routing: etree._Element) -> str:
    """Base64 SHA-256 of the exclusive canonical form of the routing header."""
    canonical = etree.tostring(routing, method="c14n", exclusive=True, with_comments=False)
    return base64.b64encode(hashlib.sha256(canonical).digest()).decode("ascii")


def _routing_bound_by_timestamp(timestamp: etree._Element, routing: etree._Element) -> SignedReference | None:
    """The routing header, when a ``gw:RoutingDigest`` in the (signed) Timestamp binds it.

    For SOAP stacks that sign only the Body and the Timestamp (zeep's own WS-Security plugin):
    the Timestamp carries the SHA-256 of the routing header's exclusive C14N, so signing the
    Timestamp signs the routing header. A digest that does not match is refused, not ignored.
    """
    bindings = timestamp.findall(ROUTING_DIGEST)
    if not bindings:
        return None
    if len(bindings) > 1:
        raise SignatureInvalid("the wsu:Timestamp carries more than one gw:RoutingDigest")
    binding = bindings[0]
    algorithm = binding.get("Algorithm", "")
    if algorithm != SHA256_URI:
        raise AlgorithmNotAllowed(f"gw:RoutingDigest algorithm {algorithm!r} is not allowed; use {SHA256_URI}")
    if not hmac.compare_digest((binding.text or "").strip(), routing_digest(routing)):
        raise SignatureInvalid("the gw:RoutingDigest in the signed Timestamp does not match the routing header")
    reference = etree.Element(f"{{{DS_NS}}}Reference", nsmap={"ds": DS_NS}, URI="#" + (element_id(timestamp) or ""))
    etree.SubElement(reference, f"{{{DS_NS}}}DigestMethod", Algorithm=SHA256_URI)
    etree.SubElement(reference, f"{{{DS_NS}}}DigestValue").text = (binding.text or "").strip()
    return SignedReference(
        part="Routing",
        uri=reference.get("URI", ""),
        element=routing,
        reference=reference,
        digest_method=SHA256_URI,
        digest_value=(binding.text or "").strip(),
    )


# One pass over the attribute nodes in C. (Reading ``element.attrib.items()`` instead costs time
# quadratic in the attributes of an element: lxml looks each value up again in the list.)
_ID_ATTRIBUTES = etree.XPath("//@*[local-name() = 'Id']")


def _unique_ids(root: etree._Element) -> dict[str, etree._Element]:
    # Every attribute whose local name is Id counts (wsu:Id, Id, any prefix), exactly as the
    # verifier resolves references; a value used twice could make it check one element while the
    # gateway processes another.
    found: dict[str, etree._Element] = {}
    for attribute in cast(list[etree._ElementUnicodeResult], _ID_ATTRIBUTES(root)):
        value = str(attribute)
        if value in found:
            raise SignatureInvalid(f"the Id {value!r} is used by more than one element")
        found[value] = cast(etree._Element, attribute.getparent())
    return found


def _base64_text(element: etree._Element, name: str) -> str:
    """The text of a base64 element (a digest, the signature value), whole and checked, without white space.

    Refused: child elements (the value would be read only up to them), an empty value (signxml
    fails on it with a TypeError) and anything that is not base64.
    """
    if len(element):
        raise SignatureInvalid(f"the {name} must hold base64 text only, not elements")
    text = "".join((element.text or "").split())
    if not text:
        raise SignatureInvalid(f"the {name} is empty")
    try:
        base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error, or characters outside ASCII
        raise SignatureInvalid(f"the {name} is not valid base64") from None
    return text


def _check_timestamp_values(timestamp: etree._Element) -> None:
    """At most one wsu:Created and one wsu:Expires, each a text value only, so that they are read whole.

    The envelope schema leaves header blocks to their own (unloaded) schemas, so nothing else stops
    an element inside the date, at which ``findtext`` would stop reading.
    """
    for name in ("Created", "Expires"):
        found = timestamp.findall(f"wsu:{name}", NS)
        if len(found) > 1:
            raise TimestampStale(f"the wsu:Timestamp has {len(found)} wsu:{name} elements; at most one is allowed")
        if found and len(found[0]):
            raise TimestampStale(f"wsu:{name} must hold a date and time only, not elements")


def _one(parent: etree._Element, path: str) -> etree._Element:
    found = parent.findall(path, NS)
    if len(found) != 1:
        raise SignatureInvalid(f"the signature needs exactly one {path} in {etree.QName(parent).localname}")
    return found[0]


def _signing_certificate(
    signature: etree._Element, security: etree._Element, ids: dict[str, etree._Element]
) -> x509.Certificate:
    """The certificate from a BinarySecurityToken reference or from X509Data in KeyInfo."""
    key_info = signature.find("ds:KeyInfo", NS)
    if key_info is None:
        raise SignatureInvalid("the signature has no ds:KeyInfo naming the signing certificate")
    reference = key_info.find("wsse:SecurityTokenReference/wsse:Reference", NS)
    if reference is not None:
        token = ids.get(reference.get("URI", "").removeprefix("#"))
        if token is None or token.tag != f"{{{WSSE_NS}}}BinarySecurityToken" or token.getparent() is not security:
            raise SignatureInvalid("the SecurityTokenReference does not name a BinarySecurityToken in the header")
        if token.get("ValueType") != X509_V3:
            raise SignatureInvalid(f"BinarySecurityToken ValueType must be {X509_V3}")
        return _load_der(token.text or "")
    certificates = key_info.findall("ds:X509Data/ds:X509Certificate", NS) + key_info.findall(
        "wsse:SecurityTokenReference/ds:X509Data/ds:X509Certificate", NS
    )
    if len(certificates) != 1:
        raise SignatureInvalid(
            "KeyInfo must carry the signing certificate: a BinarySecurityToken reference or one X509Certificate"
        )
    return _load_der(certificates[0].text or "")


def _load_der(text: str) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(base64.b64decode("".join(text.split())))
    except ValueError:
        raise SignatureInvalid("the signing certificate is not a valid X.509 certificate") from None
