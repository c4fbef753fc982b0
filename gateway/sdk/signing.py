"""Sign an envelope the way the gateway verifies it (WS-Security 1.1, X.509 Token Profile).

One detached XMLDSig signature in ``wsse:Security`` with three references, by ``wsu:Id``: the
``soap:Body``, the ``wsu:Timestamp`` and the ``gw:Routing`` header; exclusive C14N, SHA-256,
RSA-SHA256 or ECDSA-SHA256 by the key's type; the certificate as a BinarySecurityToken (default)
or in ``KeyInfo/X509Data``. signxml does the canonicalisation and the signature.
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from signxml.algorithms import DigestAlgorithm, SignatureConstructionMethod, SignatureMethod
from signxml.signer import XMLSigner

from gateway.intake.catalog import SOAP_ENV_NS
from gateway.intake.envelope import BODY, HEADER, ROUTING
from gateway.pki.keystore import PrivateKey
from gateway.security.policy import EXCLUSIVE_C14N
from gateway.security.wsse import BASE64_BINARY, DS_NS, SECURITY, WSSE_NS, WSU_ID, WSU_NS, X509_V3
from gateway.xmlparse import parse_untrusted

KeyInfoStyle = Literal["binary-token", "x509-data"]


def sign_envelope_bytes(
    envelope: bytes,
    key: PrivateKey,
    certificate: x509.Certificate,
    *,
    key_info: KeyInfoStyle = "binary-token",
    now: datetime | None = None,
    ttl: timedelta = timedelta(minutes=5),
) -> bytes:
    """``envelope`` (with its routing header) signed; see :func:`sign_envelope`."""
    root = parse_untrusted(envelope).getroot()
    sign_envelope(root, key, certificate, key_info=key_info, now=now, ttl=ttl)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def sign_envelope(
    root: etree._Element,
    key: PrivateKey,
    certificate: x509.Certificate,
    *,
    key_info: KeyInfoStyle = "binary-token",
    now: datetime | None = None,
    ttl: timedelta = timedelta(minutes=5),
) -> None:
    """Add a ``wsse:Security`` header with Timestamp, token and Signature to ``root``, in place.

    Raises ``ValueError`` when the envelope has no Header with a ``gw:Routing`` or no Body.
    """
    header = root.find(HEADER)
    body = root.find(BODY)
    routing = header.find(ROUTING) if header is not None else None
    if header is None or body is None or routing is None:
        raise ValueError("sign an envelope with a Header holding gw:Routing, and a Body")
    created = now or datetime.now(UTC)
    security = etree.Element(SECURITY, nsmap={"wsse": WSSE_NS, "wsu": WSU_NS})
    security.set(f"{{{SOAP_ENV_NS}}}mustUnderstand", "1")
    header.insert(0, security)
    timestamp = etree.SubElement(security, f"{{{WSU_NS}}}Timestamp", {WSU_ID: _new_id("TS")})
    etree.SubElement(timestamp, f"{{{WSU_NS}}}Created").text = _instant(created)
    etree.SubElement(timestamp, f"{{{WSU_NS}}}Expires").text = _instant(created + ttl)
    references = [f"#{_ensure_id(body, 'Body')}", f"#{timestamp.get(WSU_ID)}", f"#{_ensure_id(routing, 'Routing')}"]
    der = certificate.public_bytes(Encoding.DER)
    info = etree.Element(f"{{{DS_NS}}}KeyInfo", nsmap={"ds": DS_NS})
    if key_info == "binary-token":
        token_id = _new_id("X509")
        token = etree.SubElement(
            security,
            f"{{{WSSE_NS}}}BinarySecurityToken",
            {"ValueType": X509_V3, "EncodingType": BASE64_BINARY, WSU_ID: token_id},
        )
        token.text = base64.b64encode(der).decode("ascii")
        reference = etree.SubElement(
            etree.SubElement(info, f"{{{WSSE_NS}}}SecurityTokenReference"), f"{{{WSSE_NS}}}Reference"
        )
        reference.set("URI", f"#{token_id}")
        reference.set("ValueType", X509_V3)
    else:
        data = etree.SubElement(info, f"{{{DS_NS}}}X509Data")
        etree.SubElement(data, f"{{{DS_NS}}}X509Certificate").text = base64.b64encode(der).decode("ascii")
    method = SignatureMethod.ECDSA_SHA256 if isinstance(key, ec.EllipticCurvePrivateKey) else SignatureMethod.RSA_SHA256
    signer = XMLSigner(
        method=SignatureConstructionMethod.detached,
        signature_algorithm=method,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=EXCLUSIVE_C14N,
    )
    signature = signer.sign(root, key=key, reference_uri=references, key_info=info, id_attribute="Id")
    security.append(signature)


def _ensure_id(element: etree._Element, prefix: str) -> str:
    existing = element.get(WSU_ID) or element.get("Id")
    if existing:
        return existing
    value = _new_id(prefix)
    element.set(WSU_ID, value)
    return value


def _new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def _instant(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
