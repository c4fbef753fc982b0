"""Helpers for the message-security tests: post to /soap, sign envelopes in several ways, make certificates.

The protocol constants are restated here on purpose rather than imported from the gateway, so that
a change on the gateway's side shows up as a failing test.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureConstructionMethod, SignatureMethod
from signxml.signer import XMLSigner
from sqlalchemy import select
from zeep.wsse.signature import BinarySignature

from gateway.messages.models import Message
from gateway.pki.devca import DevelopmentCA
from gateway.pki.keystore import PrivateKey
from gateway.registry.services import register_certificate
from gateway.sdk.envelope import wrap
from gateway.sdk.zeep_plugins import RoutingTimestamp
from gateway.settings import Settings
from gateway.store.db import transaction
from gateway.web.app import create_app
from tests.conftest import EDUCATION_DEPARTMENT, UNIVERSITY, example

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
GW_NS = "urn:gradex:gateway:1"
REG_NS = "urn:gradex:registration:1"
WSSE_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
ATTACKER_NS = "urn:example:attacker"
NS = {"soapenv": SOAP_NS, "gw": GW_NS, "reg": REG_NS, "wsse": WSSE_NS, "wsu": WSU_NS, "ds": DS_NS}
X509_V3 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"
BASE64_BINARY = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
SHA256_URI = "http://www.w3.org/2001/04/xmlenc#sha256"
WSU_ID = f"{{{WSU_NS}}}Id"
EXCLUSIVE_C14N = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0
ALL_PARTS = ("Body", "Timestamp", "Routing")


# --- talking to /soap -------------------------------------------------------------------------


def post(client: FlaskClient, data: bytes) -> tuple[int, etree._Element]:
    response = client.post("/soap", data=data, content_type="text/xml; charset=utf-8")
    return response.status_code, etree.fromstring(response.data)


def refusal(client: FlaskClient, data: bytes) -> str:
    """The fault code of a refused message (HTTP 500, soapenv:Client)."""
    status, body = post(client, data)
    assert status == 500, etree.tostring(body)[:3000]
    assert body.findtext(".//faultcode") == "soapenv:Client", etree.tostring(body)
    code = body.findtext(".//gw:FaultDetail/gw:Code", namespaces=NS)
    assert code, etree.tostring(body)
    return code


def receipt_of(client: FlaskClient, data: bytes) -> etree._Element:
    """The gw:Receipt of an accepted message."""
    status, body = post(client, data)
    assert status == 200, body.findtext(".//faultstring")
    receipt = body.find(".//gw:Receipt", NS)
    assert receipt is not None
    return receipt


def stored_ids(app: Flask) -> list[str]:
    with transaction(app.extensions["gateway"].sessions) as session:
        return list(session.scalars(select(Message.message_id)))


@contextmanager
def fresh_client(settings: Settings) -> Iterator[FlaskClient]:
    """A new application over the same home (database, keys): a restarted gateway."""
    application = create_app(settings)
    application.config["TESTING"] = True
    try:
        yield application.test_client()
    finally:
        application.extensions["gateway"].engine.dispose()


# --- envelopes and their manipulation ---------------------------------------------------------


def registration(
    message_id: str | None = None, sender: str = UNIVERSITY, recipient: str = EDUCATION_DEPARTMENT
) -> bytes:
    """An unsigned destination registration envelope."""
    return wrap(
        example("destination-registration"),
        sender=sender,
        recipient=recipient,
        service="DestinationRegistration",
        message_id=message_id,
    )


def parse(data: bytes) -> etree._Element:
    return etree.fromstring(data)


def serialise(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def one(root: etree._Element, path: str) -> etree._Element:
    found = root.xpath(path, namespaces=NS)
    assert isinstance(found, list) and len(found) == 1, f"{path}: {found!r}"
    element = found[0]
    assert isinstance(element, etree._Element)
    return element


def header_block(root: etree._Element, *children: etree._Element, **attributes: str) -> etree._Element:
    """A new header block in a namespace the gateway does not know, appended to the SOAP Header."""
    block = etree.SubElement(one(root, "soapenv:Header"), f"{{{ATTACKER_NS}}}Wrapper", nsmap={"x": ATTACKER_NS})
    for name, value in attributes.items():
        block.set(WSU_ID if name == "wsu_Id" else name, value)
    block.extend(children)
    return block


def forged_body(signed_body: etree._Element) -> etree._Element:
    """A new, unsigned Body carrying a changed copy of the signed document."""
    document = copy.deepcopy(one(signed_body, "reg:DestinationRegistration"))
    one(document, "reg:DestinationCode").text = "11"
    for attribute in (WSU_ID, "Id"):
        document.attrib.pop(attribute, None)
    body = etree.Element(f"{{{SOAP_NS}}}Body")
    body.append(document)
    return body


def element_id(element: etree._Element) -> str:
    value = element.get(WSU_ID) or element.get("Id")
    assert value, etree.tostring(element)
    return value


def signed_digests(root: etree._Element) -> dict[str, str]:
    """Part name -> DigestValue of the sent signature, read independently of the gateway's code."""
    parts = {
        element_id(one(root, "soapenv:Body")): "Body",
        element_id(one(root, "soapenv:Header/wsse:Security/wsu:Timestamp")): "Timestamp",
        element_id(one(root, "soapenv:Header/gw:Routing")): "Routing",
    }
    return {
        parts[reference.get("URI", "").removeprefix("#")]: (reference.findtext("ds:DigestValue", namespaces=NS) or "")
        for reference in root.iterfind(".//ds:Signature/ds:SignedInfo/ds:Reference", NS)
    }


def instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def c14n_sha256(element: etree._Element) -> str:
    canonical = etree.tostring(element, method="c14n", exclusive=True, with_comments=False)
    return base64.b64encode(hashlib.sha256(canonical).digest()).decode("ascii")


# --- signing ----------------------------------------------------------------------------------


def sign_custom(
    envelope: bytes,
    key: PrivateKey,
    certificate: x509.Certificate,
    *,
    parts: Sequence[str] = ALL_PARTS,
    c14n: CanonicalizationMethod = EXCLUSIVE_C14N,
    id_attribute: str = WSU_ID,
    bind_routing: bool = False,
    routing_digest: str | None = None,
) -> bytes:
    """Sign with signxml, choosing which parts are referenced, the C14N, the Id attribute and a routing binding.

    ``bind_routing`` puts a ``gw:RoutingDigest`` (the given one, or the right one) in the Timestamp.
    """
    root = parse(envelope)
    header, body = one(root, "soapenv:Header"), one(root, "soapenv:Body")
    routing = one(header, "gw:Routing")
    security = etree.Element(f"{{{WSSE_NS}}}Security", nsmap={"wsse": WSSE_NS, "wsu": WSU_NS})
    header.insert(0, security)
    now = datetime.now(UTC)
    timestamp = etree.SubElement(security, f"{{{WSU_NS}}}Timestamp")
    etree.SubElement(timestamp, f"{{{WSU_NS}}}Created").text = instant(now)
    etree.SubElement(timestamp, f"{{{WSU_NS}}}Expires").text = instant(now + timedelta(minutes=5))
    elements = {"Body": body, "Timestamp": timestamp, "Routing": routing}
    for name, element in elements.items():
        element.set(id_attribute, f"{name}-{uuid.uuid4().hex}")
    if bind_routing:
        binding = etree.SubElement(timestamp, f"{{{GW_NS}}}RoutingDigest", Algorithm=SHA256_URI)
        binding.text = routing_digest or c14n_sha256(routing)
    token_id = f"X509-{uuid.uuid4().hex}"
    token = etree.SubElement(
        security,
        f"{{{WSSE_NS}}}BinarySecurityToken",
        {"ValueType": X509_V3, "EncodingType": BASE64_BINARY, id_attribute: token_id},
    )
    token.text = base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode("ascii")
    info = etree.Element(f"{{{DS_NS}}}KeyInfo", nsmap={"ds": DS_NS})
    reference = etree.SubElement(
        etree.SubElement(info, f"{{{WSSE_NS}}}SecurityTokenReference"), f"{{{WSSE_NS}}}Reference"
    )
    reference.set("URI", f"#{token_id}")
    reference.set("ValueType", X509_V3)
    method = SignatureMethod.ECDSA_SHA256 if isinstance(key, ec.EllipticCurvePrivateKey) else SignatureMethod.RSA_SHA256
    signer = XMLSigner(
        method=SignatureConstructionMethod.detached,
        signature_algorithm=method,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=c14n,
    )
    uris = [f"#{elements[name].get(id_attribute)}" for name in parts]
    security.append(signer.sign(root, key=key, reference_uri=uris, key_info=info, id_attribute="Id"))
    return serialise(root)


def sign_with_zeep(
    envelope: bytes, folder: Path, signature_method: object = None, digest_method: object = None
) -> bytes:
    """Sign with zeep's own BinarySignature (xmlsec), after the SDK's RoutingTimestamp; zeep's defaults are SHA-1."""
    root = parse(envelope)
    RoutingTimestamp().apply(root, {})
    plugin = BinarySignature(
        str(folder / "key.pem"),
        str(folder / "cert.pem"),
        signature_method=signature_method,
        digest_method=digest_method,
    )
    plugin.apply(root, {})
    return serialise(root)


# --- certificates -----------------------------------------------------------------------------


def development_ca(settings: Settings) -> DevelopmentCA:
    return DevelopmentCA.ensure(settings.keys_dir, datetime.now(UTC), settings.key_passphrase)


def participant_name(participant_id: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.SERIAL_NUMBER, participant_id),
            x509.NameAttribute(NameOID.COMMON_NAME, f"test certificate for {participant_id}"),
        ]
    )


def make_certificate(
    key: PrivateKey,
    issuer_key: PrivateKey | None = None,
    issuer: x509.Name | None = None,
    subject_id: str = UNIVERSITY,
    may_sign: bool = True,
) -> x509.Certificate:
    """A certificate for ``key``, issued by ``issuer_key`` (self-signed without one), valid now.

    Its key usage allows signatures, or with ``may_sign=False`` key encipherment only.
    """
    now = datetime.now(UTC)
    subject = participant_name(subject_id)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer or subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=may_sign,
                content_commitment=may_sign,
                key_encipherment=not may_sign,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(issuer_key or key, hashes.SHA256())
    )


def weak_key(kind: str) -> PrivateKey:
    if kind == "rsa-1024":
        return rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (refused on purpose)
    if kind == "ec-p521":
        return ec.generate_private_key(ec.SECP521R1())
    raise ValueError(kind)


def register(app: Flask, participant_id: str, certificate: x509.Certificate) -> None:
    with transaction(app.extensions["gateway"].sessions) as session:
        pem = certificate.public_bytes(serialization.Encoding.PEM)
        register_certificate(session, participant_id, pem, datetime.now(UTC))


def write_crl(settings: Settings, serials: Sequence[int]) -> None:
    """keys/ca/crl.pem, signed by the development CA, revoking ``serials``."""
    ca = development_ca(settings)
    now = datetime.now(UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now - timedelta(minutes=5))
        .next_update(now + timedelta(days=1))
    )
    for serial in serials:
        revoked = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now - timedelta(minutes=1))
        builder = builder.add_revoked_certificate(revoked.build())
    crl = builder.sign(ca.key, hashes.SHA256())
    (settings.keys_dir / "ca" / "crl.pem").write_bytes(crl.public_bytes(serialization.Encoding.PEM))
