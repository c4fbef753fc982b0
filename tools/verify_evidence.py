#!/usr/bin/env python3
"""Check an evidence bundle of the Graduate Exchange Gateway, offline, without the gateway.

Needs only Python 3.11+, ``cryptography`` (45 or newer) and ``lxml``; this one file is the whole
verifier, written to be read by the auditor who runs it. It checks, and reports each on a line:

1. the sender's WS-Security signature over the soap:Body, the wsu:Timestamp and the gw:Routing
   header (exclusive C14N, SHA-256/384/512 digests, RSA (2048 bits or more) or ECDSA with SHA-256
   or stronger; SHA-1 and every other algorithm are refused), and that the signing certificate
   chains to the trust anchor at the time the message was received;
2. the gateway's signed receipt: its signature, its certificate (issued by the trust anchor to
   ``serialNumber=gateway``), and that it names this message, its sender's certificate and
   signature, and exactly the digests of the parts the sender signed;
3. the signed checkpoint (a signed note: tree size, root hash, time) with the gateway's key;
4. every audit entry: its bytes hash to its leaf hash (RFC 6962: SHA-256(0x00 || entry)), its
   inclusion proof leads to the checkpoint's root, it is about this message, and the acceptance
   entry is the one the receipt names, with the message's digests.

Usage::

    python3 verify_evidence.py BUNDLE.json [--trust-anchor CA.pem] [--gateway-cert GATEWAY.pem]
                                           [--anchor-fingerprint SHA256HEX]

Without ``--trust-anchor`` or ``--anchor-fingerprint`` the bundle's own trust anchor is used and
its fingerprint printed: compare it with the one the gateway's operator publishes (docs/audit.md,
"Checking a bundle without the gateway"). Exit status: 0 when every check passes, 1 when one
fails (the line says which and why), 2 when the bundle cannot be read.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import copy
import hashlib
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import ExtensionPolicy, PolicyBuilder, Store, VerificationError
from lxml import etree

FORMAT = "graduate-exchange-gateway/evidence/v1"
ORIGIN = "graduate-exchange-gateway/audit/v1"
GATEWAY_SERIAL_NUMBER = "gateway"

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
GW_NS = "urn:gradex:gateway:1"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
WSSE_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
EC_NS = "http://www.w3.org/2001/10/xml-exc-c14n#"
NS = {"soap": SOAP_NS, "gw": GW_NS, "ds": DS_NS, "wsse": WSSE_NS, "wsu": WSU_NS, "ec": EC_NS}
X509_V3 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"

EXCLUSIVE_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
SHA256_URI = "http://www.w3.org/2001/04/xmlenc#sha256"
DIGESTS: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    SHA256_URI: hashes.SHA256,
    "http://www.w3.org/2001/04/xmldsig-more#sha384": hashes.SHA384,
    "http://www.w3.org/2001/04/xmlenc#sha512": hashes.SHA512,
}
SIGNATURE_METHODS: dict[str, tuple[str, Callable[[], hashes.HashAlgorithm]]] = {
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256": ("RSA", hashes.SHA256),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384": ("RSA", hashes.SHA384),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": ("RSA", hashes.SHA512),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256": ("ECDSA", hashes.SHA256),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384": ("ECDSA", hashes.SHA384),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512": ("ECDSA", hashes.SHA512),
}
MIN_RSA_BITS = 2048
EC_CURVES = ("secp256r1", "secp384r1")
CHECKPOINT_ECDSA_SHA256 = b"\x02"
DASH = "\u2014"


class Failed(Exception):
    """A check that did not pass; the message says what failed."""


class Unreadable(Exception):
    """The bundle cannot be read at all."""


# --- XML: a hardened parse, exclusive C14N, XMLDSig ------------------------------------------


def parse_xml(data: bytes, what: str) -> etree._Element:
    """Parse with no DTD, no entities, no network; comments dropped (no signature covers them)."""
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        collect_ids=False,
    )
    try:
        tree = etree.ElementTree(etree.fromstring(data, parser))
    except etree.XMLSyntaxError as exc:
        raise Failed(f"{what} is not well-formed XML: {exc}") from None
    if getattr(tree.docinfo, "doctype", ""):  # lxml-stubs lack DocInfo.doctype
        raise Failed(f"{what} declares a DTD, which no gateway message may")
    return tree.getroot()


def canonical(element: etree._Element, prefixes: Sequence[str] = ()) -> bytes:
    """Exclusive XML Canonicalization 1.0 (without comments) of ``element``'s subtree."""
    return etree.tostring(
        element, method="c14n", exclusive=True, with_comments=False, inclusive_ns_prefixes=list(prefixes) or None
    )


def algorithm_allowed(uri: str, allowed: Sequence[str], what: str) -> None:
    if uri in allowed:
        return
    if "sha1" in uri.lower():
        raise Failed(f"{what} {uri} uses SHA-1, which is refused")
    raise Failed(f"{what} {uri} is not allowed (allowed: {', '.join(allowed)})")


def one(parent: etree._Element, path: str) -> etree._Element:
    found = parent.findall(path, NS)
    if len(found) != 1:
        raise Failed(f"expected exactly one {path} in {etree.QName(parent).localname}, found {len(found)}")
    return found[0]


def elements_by_id(root: etree._Element) -> dict[str, etree._Element]:
    """Every element by its Id (wsu:Id, Id or any *:Id); an Id used twice is refused (signature wrapping)."""
    found: dict[str, etree._Element] = {}
    for element in root.iter(etree.Element):
        for name, value in element.attrib.items():
            if str(name) == "Id" or str(name).endswith("}Id"):
                if str(value) in found:
                    raise Failed(f"the Id {value!r} is used by more than one element")
                found[str(value)] = element
    return found


def inclusive_prefixes(parent: etree._Element) -> list[str]:
    spec = parent.find("ec:InclusiveNamespaces", NS)
    return (spec.get("PrefixList") or "").split() if spec is not None else []


@dataclass(frozen=True)
class Reference:
    uri: str
    target: etree._Element
    digest_value: str  # base64, as in the signature


def check_references(
    signature: etree._Element, ids: dict[str, etree._Element], what: str, enveloped_allowed: bool
) -> list[Reference]:
    """Recompute the digest of every ds:Reference of ``signature``; raises :class:`Failed` on any mismatch."""
    signed_info = one(signature, "ds:SignedInfo")
    references = []
    for reference in signed_info.findall("ds:Reference", NS):
        uri = reference.get("URI", "")
        target = ids.get(uri[1:]) if uri.startswith("#") else None
        if target is None:
            raise Failed(f"{what}: the signature reference {uri!r} names no element by Id")
        transforms = reference.findall("ds:Transforms/ds:Transform", NS)
        allowed = [EXCLUSIVE_C14N, ENVELOPED] if enveloped_allowed else [EXCLUSIVE_C14N]
        # Without a C14N transform a reference is canonicalised with exclusive C14N too: that is how
        # the gateway verified it when it accepted the message.
        prefixes: list[str] = []
        enveloped = False
        for transform in transforms:
            algorithm = transform.get("Algorithm", "")
            algorithm_allowed(algorithm, allowed, f"{what}: transform")
            if algorithm == ENVELOPED:
                enveloped = True
            else:
                prefixes = inclusive_prefixes(transform)
        digest_method = one(reference, "ds:DigestMethod").get("Algorithm", "")
        algorithm_allowed(digest_method, list(DIGESTS), f"{what}: digest")
        node = target
        if enveloped:
            node = _without_signature(target, signature)
        elif signature in target.iter():
            raise Failed(f"{what}: the reference {uri} covers its own signature without the enveloped transform")
        digest = hashes.Hash(DIGESTS[digest_method]())
        digest.update(canonical(node, prefixes))
        stated = "".join((one(reference, "ds:DigestValue").text or "").split())
        if base64.b64encode(digest.finalize()).decode("ascii") != stated:
            raise Failed(f"{what}: the digest of {_describe(target)} ({uri}) does not match its content")
        references.append(Reference(uri, target, stated))
    if not references:
        raise Failed(f"{what}: the signature has no ds:Reference")
    return references


def _without_signature(target: etree._Element, signature: etree._Element) -> etree._Element:
    """The enveloped-signature transform: ``target`` without the ds:Signature (its tail text stays)."""
    positions = []  # the way from ``target`` down to the signature, as child positions
    node = signature
    while node is not target:
        parent = node.getparent()
        if parent is None:
            raise Failed("the enveloped-signature transform is used by a signature outside the signed element")
        positions.append(parent.index(node))
        node = parent
    clone = copy.deepcopy(target)
    node = clone
    for position in reversed(positions):
        node = node[position]
    _keep_tail(node)
    parent = node.getparent()
    assert parent is not None
    parent.remove(node)
    return clone


def _keep_tail(node: etree._Element) -> None:
    # lxml removes an element's tail with it; XPath's enveloped transform removes only the element.
    if not node.tail:
        return
    previous = node.getprevious()
    parent = node.getparent()
    if previous is not None:
        previous.tail = (previous.tail or "") + node.tail
    elif parent is not None:
        parent.text = (parent.text or "") + node.tail


def _describe(element: etree._Element) -> str:
    qname = etree.QName(element)
    prefix = {SOAP_NS: "soap", WSU_NS: "wsu", GW_NS: "gw", WSSE_NS: "wsse"}.get(qname.namespace or "", "")
    return f"the signed {prefix + ':' if prefix else ''}{qname.localname}"


def check_signature_value(signature: etree._Element, certificate: x509.Certificate, what: str) -> str:
    """Verify the signature over the canonical ds:SignedInfo; returns the algorithm's name."""
    signed_info = one(signature, "ds:SignedInfo")
    c14n = one(signed_info, "ds:CanonicalizationMethod")
    algorithm_allowed(c14n.get("Algorithm", ""), [EXCLUSIVE_C14N], f"{what}: canonicalisation")
    method = one(signed_info, "ds:SignatureMethod").get("Algorithm", "")
    algorithm_allowed(method, list(SIGNATURE_METHODS), f"{what}: signature method")
    kind, digest = SIGNATURE_METHODS[method]
    data = canonical(signed_info, inclusive_prefixes(c14n))
    try:
        value = base64.b64decode("".join((one(signature, "ds:SignatureValue").text or "").split()), validate=True)
    except (ValueError, binascii.Error):
        raise Failed(f"{what}: the SignatureValue is not base64") from None
    key = certificate.public_key()
    try:
        if kind == "RSA":
            if not isinstance(key, rsa.RSAPublicKey):
                raise Failed(f"{what}: an RSA signature method with a {type(key).__name__}")
            if key.key_size < MIN_RSA_BITS:
                raise Failed(f"{what}: RSA keys of {key.key_size} bits are refused (at least {MIN_RSA_BITS})")
            key.verify(value, data, padding.PKCS1v15(), digest())
        else:
            if not isinstance(key, ec.EllipticCurvePublicKey):
                raise Failed(f"{what}: an ECDSA signature method with a {type(key).__name__}")
            if key.curve.name not in EC_CURVES:
                raise Failed(f"{what}: EC curve {key.curve.name} is refused")
            # XMLDSig writes ECDSA signatures as r || s, each the size of the curve's order.
            size = (key.curve.key_size + 7) // 8
            if len(value) != 2 * size:
                raise Failed(f"{what}: the ECDSA SignatureValue has {len(value)} bytes, not {2 * size}")
            r, s = int.from_bytes(value[:size], "big"), int.from_bytes(value[size:], "big")
            key.verify(encode_dss_signature(r, s), data, ec.ECDSA(digest()))
    except InvalidSignature:
        raise Failed(f"{what}: the signature over ds:SignedInfo does not verify with the certificate's key") from None
    return f"{kind}-{digest().name.upper()}"


# --- certificates ---------------------------------------------------------------------------


def load_certificate_b64(text: str, what: str) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, binascii.Error):
        raise Failed(f"{what} is not a valid X.509 certificate") from None


def check_chain(certificate: x509.Certificate, anchors: Sequence[x509.Certificate], at: datetime, what: str) -> None:
    """``certificate`` chains to one of ``anchors`` and is valid at ``at`` (the time it was used)."""
    verifier = (
        PolicyBuilder()
        .store(Store(list(anchors)))
        .time(at)
        .extension_policies(ee_policy=ExtensionPolicy.permit_all(), ca_policy=ExtensionPolicy.webpki_defaults_ca())
        .build_client_verifier()
    )
    try:
        verifier.verify(certificate, [])
    except VerificationError as exc:
        raise Failed(
            f"{what} ({certificate.subject.rfc4514_string()}) does not chain to the trust anchor at {at.isoformat()}: "
            f"{exc}"
        ) from None


def serial_number_name(certificate: x509.Certificate) -> str | None:
    names = certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    return str(names[0].value) if names else None


def fingerprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex()


# --- the message ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedMessage:
    certificate: x509.Certificate
    algorithm: str
    signature_value: bytes
    digests: dict[str, str]  # "Body", "Timestamp", "Routing" -> base64 digest as signed
    message_id: str
    sender: str
    service: str
    body_sha256: str  # hex SHA-256 of the Body's exclusive C14N, as audit entries record it


def check_message(envelope: bytes) -> SignedMessage:
    """The sender's WS-Security signature over Body, Timestamp and routing header; raises :class:`Failed`."""
    what = "message"
    root = parse_xml(envelope, "the message")
    if root.tag != f"{{{SOAP_NS}}}Envelope":
        raise Failed("message: the root element is not a SOAP 1.1 Envelope")
    header, body = one(root, "soap:Header"), one(root, "soap:Body")
    routing = one(header, "gw:Routing")
    security = one(header, "wsse:Security")
    signatures = list(root.iter(f"{{{DS_NS}}}Signature"))
    if len(signatures) != 1 or signatures[0].getparent() is not security:
        raise Failed("message: exactly one ds:Signature is allowed, in the wsse:Security header")
    signature = signatures[0]
    timestamps = list(root.iter(f"{{{WSU_NS}}}Timestamp"))
    if len(timestamps) != 1 or timestamps[0].getparent() is not security:
        raise Failed("message: exactly one wsu:Timestamp is allowed, in the wsse:Security header")
    timestamp = timestamps[0]
    ids = elements_by_id(root)
    certificate = _signing_certificate(signature, security, ids)
    references = check_references(signature, ids, what, enveloped_allowed=False)
    algorithm = check_signature_value(signature, certificate, what)
    parts = {"Body": body, "Timestamp": timestamp, "Routing": routing}
    digests: dict[str, str] = {}
    for reference in references:
        for name, element in parts.items():
            if reference.target is element:
                digests[name] = reference.digest_value
    if "Routing" not in digests and "Timestamp" in digests:
        digests.update(_routing_bound_by_timestamp(timestamp, routing))
    missing = [name for name in parts if name not in digests]
    if missing:
        raise Failed(f"message: the signature does not cover the {', '.join(missing)} (it must cover all three)")
    try:
        value = base64.b64decode("".join((one(signature, "ds:SignatureValue").text or "").split()))
    except (ValueError, binascii.Error):
        raise Failed("message: the SignatureValue is not base64") from None
    return SignedMessage(
        certificate=certificate,
        algorithm=algorithm,
        signature_value=value,
        digests=digests,
        message_id=(routing.findtext("gw:MessageId", namespaces=NS) or "").strip(),
        sender=(routing.findtext("gw:Sender", namespaces=NS) or "").strip(),
        service=(routing.findtext("gw:Service/gw:Name", namespaces=NS) or "").strip(),
        body_sha256=hashlib.sha256(canonical(body)).hexdigest(),
    )


def _signing_certificate(
    signature: etree._Element, security: etree._Element, ids: dict[str, etree._Element]
) -> x509.Certificate:
    key_info = one(signature, "ds:KeyInfo")
    reference = key_info.find("wsse:SecurityTokenReference/wsse:Reference", NS)
    if reference is not None:
        token = ids.get(reference.get("URI", "").removeprefix("#"))
        if token is None or token.tag != f"{{{WSSE_NS}}}BinarySecurityToken" or token.getparent() is not security:
            raise Failed("message: the SecurityTokenReference names no BinarySecurityToken in the header")
        if token.get("ValueType") != X509_V3:
            raise Failed("message: the BinarySecurityToken is not an X.509 v3 certificate")
        return load_certificate_b64(token.text or "", "message: the signing certificate")
    found = key_info.findall("ds:X509Data/ds:X509Certificate", NS) + key_info.findall(
        "wsse:SecurityTokenReference/ds:X509Data/ds:X509Certificate", NS
    )
    if len(found) != 1:
        raise Failed("message: KeyInfo carries no single signing certificate")
    return load_certificate_b64(found[0].text or "", "message: the signing certificate")


def _routing_bound_by_timestamp(timestamp: etree._Element, routing: etree._Element) -> dict[str, str]:
    """A routing header bound by a gw:RoutingDigest in the signed Timestamp (SOAP stacks that sign two parts)."""
    bindings = timestamp.findall("gw:RoutingDigest", NS)
    if len(bindings) != 1:
        return {}
    algorithm_allowed(bindings[0].get("Algorithm", ""), [SHA256_URI], "message: the gw:RoutingDigest")
    stated = (bindings[0].text or "").strip()
    if base64.b64encode(hashlib.sha256(canonical(routing)).digest()).decode("ascii") != stated:
        raise Failed("message: the gw:RoutingDigest in the signed Timestamp does not match the routing header")
    return {"Routing": stated}


# --- the receipt ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Receipt:
    certificate: x509.Certificate
    facts: dict[str, str]
    digests: dict[str, str]
    leaf_index: int | None
    leaf_hash: str | None  # hex


def check_receipt(data: bytes) -> Receipt:
    """The gateway's enveloped signature over the whole gw:Receipt; raises :class:`Failed`."""
    what = "receipt"
    root = parse_xml(data, "the receipt")
    if root.tag != f"{{{GW_NS}}}Receipt":
        raise Failed("receipt: the document is not a gw:Receipt")
    signatures = list(root.iter(f"{{{DS_NS}}}Signature"))
    if len(signatures) != 1 or signatures[0].getparent() is not root:
        raise Failed("receipt: exactly one ds:Signature is allowed, as a child of gw:Receipt")
    signature = signatures[0]
    ids = elements_by_id(root)
    references = check_references(signature, ids, what, enveloped_allowed=True)
    if len(references) != 1 or references[0].target is not root:
        raise Failed("receipt: the gateway's signature must cover the whole gw:Receipt and nothing else")
    certificate = load_certificate_b64(
        one(signature, "ds:KeyInfo/ds:X509Data/ds:X509Certificate").text or "", "receipt: the gateway's certificate"
    )
    check_signature_value(signature, certificate, what)
    facts = {
        name: (root.findtext(f"gw:{path}", namespaces=NS) or "").strip()
        for name, path in {
            "message_id": "MessageId",
            "sender": "Sender",
            "recipient": "Recipient",
            "service": "Service/gw:Name",
            "status": "Status",
            "received_at": "ReceivedAt",
            "certificate_sha256": "SenderCertificateSha256",
            "signature_sha256": "SenderSignatureSha256",
        }.items()
    }
    digests = {
        part.get("name", ""): "".join((part.findtext("ds:Reference/ds:DigestValue", namespaces=NS) or "").split())
        for part in root.iterfind("gw:SignedParts/gw:Part", NS)
    }
    index = root.findtext("gw:LogPosition/gw:LeafIndex", namespaces=NS)
    return Receipt(
        certificate=certificate,
        facts=facts,
        digests=digests,
        leaf_index=int(index) if index and index.strip().isdigit() else None,
        leaf_hash=(root.findtext("gw:LogPosition/gw:LeafHash", namespaces=NS) or "").strip().lower() or None,
    )


# --- the log: checkpoint, entries, inclusion proofs (RFC 6962 / RFC 9162) -------------------


@dataclass(frozen=True)
class Checkpoint:
    size: int
    root: bytes
    time: datetime


def check_checkpoint(note: str, name: str, certificate: x509.Certificate) -> Checkpoint:
    """The signed note: origin, size, root, time, then ``— name base64(key id || ECDSA signature)``."""
    key = certificate.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise Failed("checkpoint: the gateway's certificate carries no EC key (checkpoints are ECDSA-signed)")
    body, separator, signatures = note.partition("\n\n")
    lines = body.split("\n")
    if not separator or len(lines) < 4 or lines[0] != ORIGIN:
        raise Failed(f"checkpoint: not a signed note of the log {ORIGIN}")
    try:
        size = int(lines[1])
        root = base64.b64decode(lines[2], validate=True)
        times = [line.removeprefix("time ") for line in lines[3:] if line.startswith("time ")]
        when = datetime.fromisoformat(times[0].replace("Z", "+00:00"))
    except (ValueError, IndexError, binascii.Error):
        raise Failed("checkpoint: the tree size, root hash or time line is malformed") from None
    if size < 1 or len(root) != 32 or len(times) != 1:
        raise Failed("checkpoint: it needs a size, a 32-byte root and one time line")
    spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    key_id = hashlib.sha256(name.encode() + b"\n" + CHECKPOINT_ECDSA_SHA256 + spki).digest()[:4]
    for line in signatures.strip("\n").split("\n"):
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != DASH or parts[1] != name:
            continue
        try:
            blob = base64.b64decode(parts[2], validate=True)
        except (ValueError, binascii.Error):
            raise Failed("checkpoint: the signature line is not base64") from None
        if blob[:4] != key_id:
            raise Failed("checkpoint: it is signed with another key than the gateway certificate's")
        try:
            key.verify(blob[4:], (body + "\n").encode("utf-8"), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise Failed("checkpoint: the signature does not verify (the note was changed after signing)") from None
        return Checkpoint(size, root, when)
    raise Failed(f"checkpoint: no signature line by {name!r}")


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def inclusion_root(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes | None:
    """RFC 9162 section 2.1.3.2: the root that ``proof`` leads to from ``leaf`` at ``index``, or None."""
    if not 0 <= index < size:
        return None
    fn, sn = index, size - 1
    result = leaf
    for sibling in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    return result if sn == 0 else None


@dataclass(frozen=True)
class Entry:
    leaf_index: int
    data: bytes
    stated_leaf_hash: bytes
    proof: list[bytes]


def check_entry(entry: Entry, checkpoint: Checkpoint, message_id: str) -> dict[str, Any]:
    """Leaf hash, inclusion proof and subject of one entry; returns its facts."""
    where = f"entry at leaf {entry.leaf_index}"
    computed = leaf_hash(entry.data)
    if computed != entry.stated_leaf_hash:
        raise Failed(f"{where}: its bytes do not hash to its leaf hash (the entry or its hash was changed)")
    if inclusion_root(computed, entry.leaf_index, checkpoint.size, entry.proof) != checkpoint.root:
        raise Failed(f"{where}: its inclusion proof does not lead to the checkpoint's root")
    try:
        facts = json.loads(entry.data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise Failed(f"{where}: the entry is not UTF-8 JSON") from None
    if not isinstance(facts, dict) or facts.get("v") != 1 or not isinstance(facts.get("kind"), str):
        raise Failed(f"{where}: not an audit entry of encoding version 1")
    if facts.get("message_id") != message_id:
        raise Failed(f"{where}: it is about message {facts.get('message_id')!r}, not {message_id}")
    return facts


# --- the bundle -----------------------------------------------------------------------------


@dataclass
class Report:
    lines: list[tuple[bool, str, str]] = field(default_factory=list)

    def check(self, name: str, run: Callable[[], str]) -> bool:
        try:
            detail = run()
        except Failed as exc:
            text = str(exc)
            self.lines.append((False, name, text.removeprefix(f"{name}: ")))
            return False
        self.lines.append((True, name, detail))
        return True

    @property
    def ok(self) -> bool:
        return all(ok for ok, _, _ in self.lines)


def _b64(value: object, what: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (ValueError, binascii.Error):
        raise Unreadable(f"{what} is not base64") from None


def _member(document: dict[str, Any], *path: str) -> Any:
    node: Any = document
    for key in path:
        if not isinstance(node, dict) or key not in node:
            raise Unreadable(f"the bundle has no {'.'.join(path)}")
        node = node[key]
    return node


def _pem_list(text: str, what: str) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(text.encode("ascii"))
    except ValueError:
        raise Unreadable(f"{what} is not PEM") from None


def verify_bundle(
    document: dict[str, Any],
    anchors: Sequence[x509.Certificate] | None = None,
    gateway_certificate: x509.Certificate | None = None,
) -> Report:
    """Check everything in an evidence bundle; ``anchors`` and ``gateway_certificate`` default to the bundle's.

    Raises :class:`Unreadable` when the bundle is not one.
    """
    if _member(document, "format") != FORMAT:
        raise Unreadable(f"not an evidence bundle of format {FORMAT}")
    meta = _member(document, "message")
    message_id = str(_member(document, "message", "message_id"))
    envelope = _b64(_member(document, "message", "envelope"), "message.envelope")
    receipt_bytes = _b64(_member(document, "receipt"), "receipt")
    note = str(_member(document, "log", "checkpoint"))
    key_name = str(_member(document, "log", "key_name"))
    entries = []
    for raw in _member(document, "log", "entries"):
        entries.append(
            Entry(
                leaf_index=int(_member(raw, "leaf_index")),
                data=_b64(_member(raw, "entry"), "an entry"),
                stated_leaf_hash=_b64(_member(raw, "leaf_hash"), "a leaf hash"),
                proof=[_b64(h, "a proof hash") for h in _member(raw, "inclusion_proof")],
            )
        )
    trusted = (
        list(anchors)
        if anchors
        else _pem_list("".join(_member(document, "certificates", "trust_anchors")), "the trust anchors")
    )
    gateway_cert = (
        gateway_certificate or _pem_list(_member(document, "certificates", "gateway"), "the gateway certificate")[0]
    )
    bundled_sender = _pem_list(_member(document, "certificates", "sender"), "the sender certificate")[0]
    try:
        received_at = datetime.fromisoformat(str(_member(document, "message", "received_at")).replace("Z", "+00:00"))
    except ValueError:
        raise Unreadable("message.received_at is not a date and time") from None

    report = Report()
    state: dict[str, Any] = {}

    def message() -> str:
        signed = check_message(envelope)
        state["message"] = signed
        if signed.message_id != message_id:
            raise Failed(f"message: its routing header names message {signed.message_id}, not {message_id}")
        return (
            f"{signed.algorithm} signature by {signed.certificate.subject.rfc4514_string()} over the Body, "
            "Timestamp and routing header verifies"
        )

    def receipt() -> str:
        found = check_receipt(receipt_bytes)
        if serial_number_name(found.certificate) != GATEWAY_SERIAL_NUMBER:
            raise Failed("receipt: it is not signed with a gateway certificate (serialNumber=gateway)")
        at = _instant(found.facts["received_at"], "receipt: ReceivedAt")
        check_chain(found.certificate, trusted, at, "receipt: the gateway's certificate")
        state["receipt"] = found
        expected = {"message_id": message_id, "recipient": str(meta.get("recipient"))}
        signed: SignedMessage | None = state.get("message")
        if signed is not None:
            expected.update(
                sender=signed.sender,
                service=signed.service,
                certificate_sha256=fingerprint(signed.certificate),
                signature_sha256=hashlib.sha256(signed.signature_value).hexdigest(),
            )
        for name, value in expected.items():
            if found.facts.get(name) != value:
                raise Failed(f"receipt: its {name} is {found.facts.get(name)!r}, the message's is {value!r}")
        if signed is None:
            return "signed by the gateway (not compared with the message, which does not verify)"
        for part, digest in signed.digests.items():
            if found.digests.get(part) != digest:
                raise Failed(f"receipt: it acknowledges another {part} digest than the one the sender signed")
        return "signed by the gateway; names this message, its signature and the digests the sender signed"

    def sender_certificate() -> str:
        signed: SignedMessage | None = state.get("message")
        if signed is None:
            raise Failed("sender certificate: not checked, as the message does not verify")
        if signed.certificate != bundled_sender:
            raise Failed("sender certificate: the bundle's copy is not the certificate the message carries")
        found: Receipt | None = state.get("receipt")
        at = _instant(found.facts["received_at"], "ReceivedAt") if found else received_at
        check_chain(signed.certificate, trusted, at, "sender certificate")
        return f"chains to the trust anchor and was valid when the message was received ({at.isoformat()})"

    def checkpoint() -> str:
        if serial_number_name(gateway_cert) != GATEWAY_SERIAL_NUMBER:
            raise Failed("checkpoint: the gateway certificate does not name the gateway (serialNumber=gateway)")
        point = check_checkpoint(note, key_name, gateway_cert)
        check_chain(gateway_cert, trusted, point.time, "checkpoint: the gateway's certificate")
        state["checkpoint"] = point
        return f"{point.size} entries, signed by the gateway at {point.time.isoformat()}"

    report.check("message", message)
    report.check("receipt", receipt)
    report.check("sender certificate", sender_certificate)
    report.check("checkpoint", checkpoint)
    if not entries:
        report.check("entries", lambda: _fail("entries: the bundle holds no audit entry"))
    accepted_seen = False
    for entry in entries:

        def one_entry(entry: Entry = entry) -> str:
            point: Checkpoint | None = state.get("checkpoint")
            if point is None:
                raise Failed(f"entry at leaf {entry.leaf_index}: there is no verified checkpoint to prove it against")
            facts = check_entry(entry, point, message_id)
            named: Receipt | None = state.get("receipt")
            if named is not None and named.leaf_index == entry.leaf_index and facts["kind"] != "message.accepted":
                raise Failed(f"entry at leaf {entry.leaf_index}: the receipt names it, but it is a {facts['kind']}")
            if facts["kind"] == "message.accepted":
                _check_acceptance(entry, facts, named, state.get("message"))
            return f"{facts['kind']}: leaf hash and inclusion proof verify"

        name = f"entry at leaf {entry.leaf_index}"
        report.check(name, one_entry)
        found_receipt: Receipt | None = state.get("receipt")
        if found_receipt is not None and entry.leaf_index == found_receipt.leaf_index:
            accepted_seen = True
    found_receipt = state.get("receipt")
    if found_receipt is not None and not accepted_seen:
        report.check(
            "acceptance",
            lambda: _fail(
                f"acceptance: the entry at leaf {found_receipt.leaf_index} that the receipt names is missing"
            ),
        )
    return report


def _instant(text: str, what: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise Failed(f"{what} {text!r} is not a date and time") from None


def _fail(text: str) -> str:
    raise Failed(text)


def _check_acceptance(
    entry: Entry, facts: dict[str, Any], receipt: Receipt | None, signed: SignedMessage | None
) -> None:
    where = f"entry at leaf {entry.leaf_index}"
    if receipt is not None and receipt.leaf_index == entry.leaf_index:
        if receipt.leaf_hash != entry.stated_leaf_hash.hex():
            raise Failed(f"{where}: the receipt names another leaf hash for this acceptance")
        if facts.get("recipient") != receipt.facts["recipient"]:
            raise Failed(f"{where}: its recipient is not the one the receipt names")
    if signed is not None:
        expected = {
            "sender": signed.sender,
            "service": signed.service,
            "body_sha256": signed.body_sha256,
            "signature_sha256": hashlib.sha256(signed.signature_value).hexdigest(),
            "certificate_sha256": fingerprint(signed.certificate),
        }
        for name, value in expected.items():
            if facts.get(name) != value:
                raise Failed(f"{where}: its {name} does not match the message")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("bundle", type=Path, help="the evidence bundle (JSON) written by `gateway audit export`")
    parser.add_argument(
        "--trust-anchor",
        type=Path,
        action="append",
        default=[],
        help="PEM file of the CA to trust, obtained out-of-band (repeatable) [default: the bundle's]",
    )
    parser.add_argument(
        "--gateway-cert",
        type=Path,
        help="the gateway's certificate (PEM), obtained out-of-band [default: the bundle's]",
    )
    parser.add_argument(
        "--anchor-fingerprint", help="the SHA-256 fingerprint (hex) the trust anchor must have, obtained out-of-band"
    )
    args = parser.parse_args(argv)
    try:
        document = json.loads(args.bundle.read_bytes())
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise Unreadable(f"not an evidence bundle of format {FORMAT}")
        anchors = [c for path in args.trust_anchor for c in _pem_list(path.read_text(), str(path))]
        gateway_cert = (
            _pem_list(args.gateway_cert.read_text(), str(args.gateway_cert))[0] if args.gateway_cert else None
        )
        if not anchors:
            anchors = _pem_list("".join(_member(document, "certificates", "trust_anchors")), "the trust anchors")
        if args.anchor_fingerprint:
            wanted = args.anchor_fingerprint.replace(":", "").strip().lower()
            anchors = [a for a in anchors if fingerprint(a) == wanted]
            if not anchors:
                print(f"FAILED: no trust anchor has the fingerprint {wanted}", file=sys.stderr)
                return 1
        report = verify_bundle(document, anchors, gateway_cert)
    except (OSError, json.JSONDecodeError, Unreadable, TypeError, ValueError) as exc:
        print(f"cannot read the evidence bundle: {exc}", file=sys.stderr)
        return 2
    message = document.get("message", {})
    print(
        f"Evidence bundle of message {message.get('message_id')}: {message.get('sender')} -> "
        f"{message.get('recipient')}, {message.get('service')}, received {message.get('received_at')}"
    )
    for anchor in anchors:
        print(f"Trust anchor: {anchor.subject.rfc4514_string()}, SHA-256 {fingerprint(anchor)}")
    if not args.trust_anchor and not args.anchor_fingerprint:
        print("  (taken from the bundle: compare its fingerprint with the one the gateway's operator publishes)")
    for ok, name, detail in report.lines:
        print(f"  {'ok  ' if ok else 'FAIL'}  {name}: {detail}")
    failed = sum(1 for ok, _, _ in report.lines if not ok)
    if failed:
        print(f"FAILED: {failed} of {len(report.lines)} checks")
        return 1
    print(f"OK: all {len(report.lines)} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
