"""xmlsec1 (the XML Security Library's command-line tool, Debian package ``xmlsec1``) against the gateway.

An XMLDSig implementation other than ours (signxml) must be able to:

- sign, from a template, a message the gateway accepts (RSA-SHA256 and ECDSA-SHA256; the certificate
  in ``KeyInfo/X509Data`` or as a BinarySecurityToken), while the gateway itself refuses SHA-1, which
  xmlsec1 makes and verifies without complaint, and a Body changed after signing;
- verify the gateway's signed receipt given the development CA certificate;
- verify what our SDK signs.

xmlsec1 resolves ``URI="#id"`` only for attributes it is told about, ``--id-attr:Id NAMESPACE:ELEMENT``.
It matches the attribute by its local name: the same options find the unqualified ``Id`` that the
template here (and node-soap) writes and the namespaced ``wsu:Id`` that the SDK writes.

Without xmlsec1 these tests skip; under CI=true they fail (``tests.conftest.require``).
docs/signing.md and examples/signed/ explain the same commands to agency developers.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from flask.testing import FlaskClient
from lxml import etree
from werkzeug.test import TestResponse

from gateway.intake.catalog import GATEWAY_NS, SOAP_ENV_NS
from gateway.intake.envelope import BODY, HEADER, ROUTING
from gateway.pki.devca import DevelopmentCA
from gateway.registry.services import register_certificate
from gateway.sdk.envelope import wrap
from gateway.sdk.receipts import ReceiptInvalid, sent_digests, verify_receipt
from gateway.sdk.signing import KeyInfoStyle
from gateway.security.wsse import (
    BASE64_BINARY,
    DS_NS,
    SECURITY,
    SIGNATURE,
    TIMESTAMP,
    WSSE_NS,
    WSU_ID,
    WSU_NS,
    X509_V3,
)
from gateway.settings import Settings
from gateway.store.db import connect, session_factory, transaction
from gateway.xmlparse import parse_untrusted
from tests.conftest import EDUCATION_DEPARTMENT, EXAMPLES, UNIVERSITY, Signer, example, receipt_bytes, require

pytestmark = pytest.mark.slow  # starts xmlsec1 processes

EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
INCLUSIVE_C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"

# Tell xmlsec1 which attributes are Ids: on the Body, the Timestamp and the routing header.
ID_ATTRS = (
    "--id-attr:Id",
    f"{SOAP_ENV_NS}:Body",
    "--id-attr:Id",
    f"{WSU_NS}:Timestamp",
    "--id-attr:Id",
    f"{GATEWAY_NS}:Routing",
)
# The receipt's own signature: the response's WS-Security signature in the Header comes first.
RECEIPT_ID_ATTR = (
    "--id-attr:Id",
    f"{GATEWAY_NS}:Receipt",
    "--node-xpath",
    "//*[local-name()='Receipt']/*[local-name()='Signature']",
)
IDS = {"Body": "id-body", "Timestamp": "id-timestamp", "Routing": "id-routing"}
TOKEN_ID = "id-token"
TTL = timedelta(minutes=5)
NS = {"gw": GATEWAY_NS, "ds": DS_NS, "wsse": WSSE_NS, "wsu": WSU_NS}

SIGNED_EXAMPLES = EXAMPLES / "signed"
TEMPLATE_EXAMPLE = SIGNED_EXAMPLES / "destination-registration.template.xml"
SIGNED_EXAMPLE = SIGNED_EXAMPLES / "destination-registration.signed.xml"
EXAMPLE_CA = SIGNED_EXAMPLES / "example-ca.cert.pem"


# --- helpers ------------------------------------------------------------------------------------


@pytest.fixture
def xmlsec1_tool() -> None:
    """xmlsec1 must run: skip without it, fail under CI=true."""

    def check() -> None:
        if shutil.which("xmlsec1") is None:
            raise FileNotFoundError("no xmlsec1 on PATH; install the Debian package xmlsec1")
        subprocess.run(["xmlsec1", "--version"], capture_output=True, timeout=30, check=True)

    require("xmlsec1", check)


def xmlsec1(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["xmlsec1", *map(str, args)], capture_output=True, text=True, timeout=30, check=False)


def instant(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def registration(message_id: str | None = None) -> bytes:
    """The example destination registration, from the university to the education department."""
    return wrap(
        example("destination-registration"),
        sender=UNIVERSITY,
        service="DestinationRegistration",
        recipient=EDUCATION_DEPARTMENT,
        message_id=message_id or str(uuid.uuid4()),
    )


def signature_template(
    envelope: bytes,
    *,
    created: datetime,
    method: str = RSA_SHA256,
    digest: str = SHA256,
    c14n: str = EXC_C14N,
    key_info: KeyInfoStyle = "x509-data",
    certificate: x509.Certificate | None = None,
    parts: Sequence[str] = ("Body", "Timestamp", "Routing"),
    transform_prefixes: str | None = None,
    c14n_prefixes: str | None = None,
) -> bytes:
    """``envelope`` with a wsse:Security header: a fresh wsu:Timestamp and a ds:Signature template.

    The template names what to sign and how; ``xmlsec1 --sign`` fills in the digests, the signature
    value and (for ``x509-data``) the certificate. Body, Timestamp and routing header get an
    unqualified ``Id``. ``key_info="binary-token"`` puts ``certificate`` into a BinarySecurityToken
    referenced from a SecurityTokenReference, which xmlsec1 leaves alone. ``*_prefixes`` add an
    ``ec:InclusiveNamespaces PrefixList`` (as Apache WSS4J writes) to the Transforms or to SignedInfo.
    """
    root = parse_untrusted(envelope).getroot()
    header, body = root.find(HEADER), root.find(BODY)
    assert header is not None and body is not None
    routing = header.find(ROUTING)
    assert routing is not None
    body.set("Id", IDS["Body"])
    routing.set("Id", IDS["Routing"])
    security = etree.Element(SECURITY, nsmap={"wsse": WSSE_NS, "wsu": WSU_NS})
    security.set(f"{{{SOAP_ENV_NS}}}mustUnderstand", "1")
    header.insert(0, security)
    timestamp = etree.SubElement(security, TIMESTAMP, Id=IDS["Timestamp"])
    etree.SubElement(timestamp, f"{{{WSU_NS}}}Created").text = instant(created)
    etree.SubElement(timestamp, f"{{{WSU_NS}}}Expires").text = instant(created + TTL)
    if key_info == "binary-token":
        assert certificate is not None, "a BinarySecurityToken needs the certificate"
        token = etree.SubElement(
            security,
            f"{{{WSSE_NS}}}BinarySecurityToken",
            {"ValueType": X509_V3, "EncodingType": BASE64_BINARY, WSU_ID: TOKEN_ID},
        )
        token.text = base64.b64encode(certificate.public_bytes(Encoding.DER)).decode("ascii")
    signature = etree.SubElement(security, SIGNATURE, nsmap={"ds": DS_NS})
    signed_info = _ds(signature, "SignedInfo")
    _inclusive_namespaces(_ds(signed_info, "CanonicalizationMethod", Algorithm=c14n), c14n_prefixes)
    _ds(signed_info, "SignatureMethod", Algorithm=method)
    for part in parts:
        reference = _ds(signed_info, "Reference", URI=f"#{IDS[part]}")
        _inclusive_namespaces(_ds(_ds(reference, "Transforms"), "Transform", Algorithm=EXC_C14N), transform_prefixes)
        _ds(reference, "DigestMethod", Algorithm=digest)
        _ds(reference, "DigestValue")
    _ds(signature, "SignatureValue")
    info = _ds(signature, "KeyInfo")
    if key_info == "binary-token":
        token_reference = etree.SubElement(info, f"{{{WSSE_NS}}}SecurityTokenReference")
        etree.SubElement(token_reference, f"{{{WSSE_NS}}}Reference", URI=f"#{TOKEN_ID}", ValueType=X509_V3)
    else:
        _ds(_ds(info, "X509Data"), "X509Certificate")  # xmlsec1 writes the certificate here
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _ds(parent: etree._Element, name: str, **attributes: str) -> etree._Element:
    return etree.SubElement(parent, f"{{{DS_NS}}}{name}", attributes)


def _inclusive_namespaces(parent: etree._Element, prefixes: str | None) -> None:
    if prefixes is not None:
        etree.SubElement(parent, f"{{{EXC_C14N}}}InclusiveNamespaces", PrefixList=prefixes, nsmap={"ec": EXC_C14N})


def xmlsec1_sign(
    template: bytes, key: Path, certificates: Sequence[Path], folder: Path, name: str = "message"
) -> bytes:
    """``xmlsec1 --sign`` of ``template`` with ``key``; ``certificates`` go with the key (first: its own)."""
    source, signed = folder / f"{name}.template.xml", folder / f"{name}.signed.xml"
    source.write_bytes(template)
    keys = ",".join(str(path) for path in (key, *certificates))
    result = xmlsec1("--sign", "--privkey-pem", keys, *ID_ATTRS, "--output", signed, source)
    assert result.returncode == 0, result.stderr
    return signed.read_bytes()


def participant_key(settings: Settings, participant_id: str = UNIVERSITY) -> tuple[Path, Path]:
    folder = settings.keys_dir / "participants" / participant_id
    return folder / "key.pem", folder / "cert.pem"


def issue_ec_key(settings: Settings, folder: Path) -> tuple[Path, Path]:
    """A P-256 key and certificate for the university from the development CA, registered to it."""
    now = datetime.now(UTC)
    ca = DevelopmentCA.ensure(settings.keys_dir, now, settings.key_passphrase)
    issued = ca.issue(folder, UNIVERSITY, "北京示范大学", now, "ec")
    engine = connect(settings.database_url)
    try:
        with transaction(session_factory(engine)) as session:
            register_certificate(session, UNIVERSITY, issued.certificate.public_bytes(Encoding.PEM), now)
    finally:
        engine.dispose()
    return issued.key_path, issued.cert_path


def load_certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def post(client: FlaskClient, data: bytes) -> TestResponse:
    return client.post("/soap", data=data, content_type="text/xml; charset=utf-8")


def fault_code(response: TestResponse) -> str | None:
    return etree.fromstring(response.data).findtext(".//gw:Code", namespaces=NS)


def receipt_of(response: TestResponse) -> etree._Element:
    receipt = etree.fromstring(response.data).find(".//gw:Receipt", NS)
    assert receipt is not None, response.text
    return receipt


def acknowledged_digests(receipt: etree._Element) -> dict[str, str]:
    return {
        part.get("name", ""): part.findtext("ds:Reference/ds:DigestValue", namespaces=NS) or ""
        for part in receipt.iterfind("gw:SignedParts/gw:Part", NS)
    }


def token_certificate(signed: bytes) -> x509.Certificate:
    """The certificate in a message's BinarySecurityToken."""
    token = etree.fromstring(signed).findtext(".//wsse:BinarySecurityToken", namespaces=NS)
    assert token, "the message has no BinarySecurityToken"
    return x509.load_der_x509_certificate(base64.b64decode("".join(token.split())))


def refresh(template: bytes, now: datetime) -> bytes:
    """``template`` with a new message id and fresh times (for the committed example template)."""
    root = parse_untrusted(template).getroot()
    root.find(f"{HEADER}/{ROUTING}/gw:MessageId", NS).text = str(uuid.uuid4())  # type: ignore[union-attr]
    root.find(f"{HEADER}/{ROUTING}/gw:CreatedAt", NS).text = instant(now)  # type: ignore[union-attr]
    root.find(".//wsu:Timestamp/wsu:Created", NS).text = instant(now)  # type: ignore[union-attr]
    root.find(".//wsu:Timestamp/wsu:Expires", NS).text = instant(now + TTL)  # type: ignore[union-attr]
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


# --- 1. a message signed by xmlsec1 --------------------------------------------------------------

SIGNED_BY_XMLSEC1 = [
    pytest.param("rsa", {}, id="rsa-sha256-x509data"),
    pytest.param("rsa", {"key_info": "binary-token"}, id="rsa-sha256-binarysecuritytoken"),
    pytest.param("ec", {}, id="ecdsa-sha256-p256-x509data"),
    pytest.param("rsa", {"transform_prefixes": "soapenv gw"}, id="inclusive-namespaces-in-transforms"),
    # Apache WSS4J writes an InclusiveNamespaces PrefixList into SignedInfo's CanonicalizationMethod by default.
    pytest.param("rsa", {"c14n_prefixes": "soapenv wsse"}, id="inclusive-namespaces-in-signedinfo"),
]


@pytest.mark.parametrize(("algorithm", "options"), SIGNED_BY_XMLSEC1)
def test_a_message_signed_by_xmlsec1_from_a_template_is_accepted(
    xmlsec1_tool: None,
    client: FlaskClient,
    settings: Settings,
    tmp_path: Path,
    algorithm: str,
    options: dict[str, str],
) -> None:
    key, cert = participant_key(settings) if algorithm == "rsa" else issue_ec_key(settings, tmp_path / "ec")
    message_id = str(uuid.uuid4())
    template = signature_template(
        registration(message_id),
        created=datetime.now(UTC),
        method=RSA_SHA256 if algorithm == "rsa" else ECDSA_SHA256,
        certificate=load_certificate(cert),
        **options,  # type: ignore[arg-type]
    )
    signed = xmlsec1_sign(template, key, [cert], tmp_path)

    response = post(client, signed)

    assert response.status_code == 200, response.text
    receipt = receipt_of(response)
    assert receipt.findtext("gw:MessageId", namespaces=NS) == message_id
    assert receipt.findtext("gw:Status", namespaces=NS) == "accepted"
    # The receipt acknowledges exactly the digests xmlsec1 computed, part by part.
    assert acknowledged_digests(receipt) == sent_digests(etree.fromstring(signed))
    assert list(acknowledged_digests(receipt)) == ["Body", "Timestamp", "Routing"]


def default_namespace_registration(outer: str) -> bytes:
    """The registration as a JAX-WS stack writes it: its document in the default namespace, and a
    default namespace (``outer``) declared on the Envelope that no signed element uses itself.

    Exclusive C14N leaves ``outer`` out of every signed part, unless ``#default`` is in the PrefixList:
    then it is rendered on the Body, the Timestamp, the routing header and SignedInfo. So a gateway
    that ignored ``#default`` would refuse the signed message, and accept it with ``outer`` changed.
    """
    document = example("destination-registration").replace(b"<reg:", b"<").replace(b"</reg:", b"</")
    document = document.replace(b'xmlns:reg="urn:gradex:registration:1"', b'xmlns="urn:gradex:registration:1"')
    envelope = wrap(
        document,
        sender=UNIVERSITY,
        service="DestinationRegistration",
        recipient=EDUCATION_DEPARTMENT,
        message_id=str(uuid.uuid4()),
    )
    return envelope.replace(b"<soapenv:Envelope ", f'<soapenv:Envelope xmlns="{outer}" '.encode(), 1)


def test_prefixlist_default_as_wss4j_writes_it_is_accepted_and_honoured(
    xmlsec1_tool: None, client: FlaskClient, settings: Settings, tmp_path: Path
) -> None:
    """``PrefixList="#default ..."`` (issue 15): accepted, and the default namespace really is signed."""
    key, cert = participant_key(settings)
    envelope = default_namespace_registration("urn:example:outer")
    assert etree.fromstring(envelope).find(f"{BODY}/{{urn:gradex:registration:1}}DestinationRegistration") is not None
    template = signature_template(
        envelope, created=datetime.now(UTC), c14n_prefixes="#default soapenv wsse", transform_prefixes="#default"
    )
    signed = xmlsec1_sign(template, key, [cert], tmp_path)
    assert signed.count(b'PrefixList="#default') == 4  # SignedInfo and the three references

    changed = signed.replace(b'xmlns="urn:example:outer"', b'xmlns="urn:example:changed"', 1)
    assert changed != signed
    refused = post(client, changed)
    accepted = post(client, signed)

    assert (refused.status_code, fault_code(refused)) == (500, "SIGNATURE_INVALID")
    assert accepted.status_code == 200, accepted.text
    assert acknowledged_digests(receipt_of(accepted)) == sent_digests(etree.fromstring(signed))
    # xmlsec1 agrees on both.
    ca = settings.keys_dir / "ca" / "ca.cert.pem"
    (tmp_path / "changed.xml").write_bytes(changed)
    assert xmlsec1("--verify", "--trusted-pem", ca, *ID_ATTRS, tmp_path / "message.signed.xml").returncode == 0
    assert xmlsec1("--verify", "--trusted-pem", ca, *ID_ATTRS, tmp_path / "changed.xml").returncode != 0


def test_one_byte_changed_in_the_body_after_xmlsec1_signed_is_refused(
    xmlsec1_tool: None, client: FlaskClient, settings: Settings, tmp_path: Path
) -> None:
    key, cert = participant_key(settings)
    signed = xmlsec1_sign(signature_template(registration(), created=datetime.now(UTC)), key, [cert], tmp_path)
    tampered = signed.replace(b"RegisteredAt>2025", b"RegisteredAt>2024", 1)  # in the Body
    assert len(tampered) == len(signed) and sum(a != b for a, b in zip(signed, tampered, strict=True)) == 1

    response = post(client, tampered)

    assert response.status_code == 500
    assert fault_code(response) == "SIGNATURE_INVALID"
    # xmlsec1 sees the same: its own signature holds, the tampered copy does not.
    ca = settings.keys_dir / "ca" / "ca.cert.pem"
    (tmp_path / "tampered.xml").write_bytes(tampered)
    assert xmlsec1("--verify", "--trusted-pem", ca, *ID_ATTRS, tmp_path / "message.signed.xml").returncode == 0
    assert xmlsec1("--verify", "--trusted-pem", ca, *ID_ATTRS, tmp_path / "tampered.xml").returncode != 0


@pytest.mark.parametrize(
    ("method", "digest"),
    [(RSA_SHA1, SHA256), (RSA_SHA256, SHA1)],
    ids=["rsa-sha1-signature", "sha1-digests"],
)
def test_sha1_made_by_xmlsec1_is_refused_by_the_gateway_itself(
    xmlsec1_tool: None, client: FlaskClient, settings: Settings, tmp_path: Path, method: str, digest: str
) -> None:
    key, cert = participant_key(settings)
    template = signature_template(registration(), created=datetime.now(UTC), method=method, digest=digest)
    xmlsec1_sign(template, key, [cert], tmp_path)
    signed = tmp_path / "message.signed.xml"
    # xmlsec1 signs with SHA-1 and verifies it without complaint ...
    ca = settings.keys_dir / "ca" / "ca.cert.pem"
    assert xmlsec1("--verify", "--trusted-pem", ca, *ID_ATTRS, signed).returncode == 0

    response = post(client, signed.read_bytes())

    # ... so the gateway has to refuse it on its own.
    assert response.status_code == 500
    assert fault_code(response) == "ALGORITHM_NOT_ALLOWED"


def test_signing_mistakes_get_their_fault_codes(
    xmlsec1_tool: None, client: FlaskClient, settings: Settings, tmp_path: Path
) -> None:
    """The refusals docs/signing.md lists, each made with xmlsec1."""
    key, cert = participant_key(settings)
    ca = settings.keys_dir / "ca" / "ca.cert.pem"
    now = datetime.now(UTC)
    cases = {
        "routing-not-signed": (
            signature_template(registration(), created=now, parts=("Body", "Timestamp")),
            [cert],
            "SIGNATURE_INVALID",
        ),
        "inclusive-c14n": (
            signature_template(registration(), created=now, c14n=INCLUSIVE_C14N),
            [cert],
            "ALGORITHM_NOT_ALLOWED",
        ),
        "stale-timestamp": (
            signature_template(registration(), created=now - timedelta(minutes=7)),
            [cert],
            "TIMESTAMP_STALE",
        ),
        # X509Data with the CA certificate after the signer's: one certificate only, the signer's.
        "certificate-chain-in-x509data": (
            signature_template(registration(), created=now),
            [cert, ca],
            "SIGNATURE_INVALID",
        ),
    }
    outcomes = {}
    for name, (template, certificates, _) in cases.items():
        response = post(client, xmlsec1_sign(template, key, certificates, tmp_path, name))
        outcomes[name] = (response.status_code, fault_code(response))
    assert outcomes == {name: (500, code) for name, (_, _, code) in cases.items()}


def test_the_same_signed_message_twice_is_answered_with_its_receipt(
    xmlsec1_tool: None, client: FlaskClient, settings: Settings, tmp_path: Path
) -> None:
    key, cert = participant_key(settings)
    signed = xmlsec1_sign(signature_template(registration(), created=datetime.now(UTC)), key, [cert], tmp_path)

    first, second = post(client, signed), post(client, signed)

    assert first.status_code == 200, first.text
    assert second.status_code == 200
    assert receipt_bytes(second.data) == receipt_bytes(first.data)


# --- 2. the gateway's signed receipt, checked by xmlsec1 -----------------------------------------


@pytest.fixture
def receipt_file(client: FlaskClient, sign: Signer, tmp_path: Path) -> Path:
    """The whole response envelope to an accepted message, as the sender receives it."""
    response = post(client, sign(registration()))
    assert response.status_code == 200, response.text
    path = tmp_path / "receipt.xml"
    path.write_bytes(response.data)
    return path


def test_the_gateways_receipt_verifies_with_xmlsec1(
    xmlsec1_tool: None, settings: Settings, receipt_file: Path, tmp_path: Path
) -> None:
    ca = settings.keys_dir / "ca" / "ca.cert.pem"
    for options in ([], ["--enabled-key-data", "x509"]):  # the second: keys only from certificates
        result = xmlsec1("--verify", "--trusted-pem", ca, *options, *RECEIPT_ID_ATTR, receipt_file)
        assert result.returncode == 0, result.stderr
        assert "SignedInfo References (ok/all): 1/1" in result.stderr

    data = receipt_file.read_bytes()
    tampered = data.replace(b"<gw:Status>accepted</gw:Status>", b"<gw:Status>acceptee</gw:Status>")
    assert tampered != data
    (tmp_path / "tampered.xml").write_bytes(tampered)
    result = xmlsec1("--verify", "--trusted-pem", ca, *RECEIPT_ID_ATTR, tmp_path / "tampered.xml")
    assert result.returncode != 0


def _forge(receipt_file: Path, tmp_path: Path, key: Path, certificates: Sequence[Path], key_info: str) -> Path:
    """The receipt with another status, re-signed with ``key``: what a forger would do."""
    root = etree.parse(str(receipt_file)).getroot()
    receipt = root.find(".//gw:Receipt", NS)
    assert receipt is not None
    receipt.find("gw:Status", NS).text = "forged"  # type: ignore[union-attr]
    signature = receipt.find("ds:Signature", NS)
    assert signature is not None
    signature.find("ds:SignedInfo/ds:SignatureMethod", NS).set("Algorithm", RSA_SHA256)  # type: ignore[union-attr]
    for node in [*signature.iterfind(".//ds:DigestValue", NS), signature.find("ds:SignatureValue", NS)]:
        node.text = ""  # type: ignore[union-attr]
    info = signature.find("ds:KeyInfo", NS)
    assert info is not None
    info.clear()
    if key_info == "key-value":
        _ds(info, "KeyValue")
    else:
        _ds(_ds(info, "X509Data"), "X509Certificate")
    template, forged = tmp_path / f"forge-{key_info}.xml", tmp_path / f"forged-{key_info}.xml"
    template.write_bytes(etree.tostring(root))
    keys = ",".join(str(path) for path in (key, *certificates))
    result = xmlsec1("--sign", "--privkey-pem", keys, *RECEIPT_ID_ATTR, "--output", forged, template)
    assert result.returncode == 0, result.stderr
    return forged


def test_a_receipt_forged_with_a_bare_key_passes_only_without_enabled_key_data_x509(
    xmlsec1_tool: None, settings: Settings, receipt_file: Path, tmp_path: Path
) -> None:
    """Why docs/signing.md adds ``--enabled-key-data x509``: otherwise any KeyValue key is believed."""
    key = tmp_path / "forger.key.pem"
    key.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
        )
    )
    forged = _forge(receipt_file, tmp_path, key, [], "key-value")
    ca = settings.keys_dir / "ca" / "ca.cert.pem"
    assert xmlsec1("--verify", "--trusted-pem", ca, *RECEIPT_ID_ATTR, forged).returncode == 0  # xmlsec1 1.2.37
    assert xmlsec1("--verify", "--trusted-pem", ca, "--enabled-key-data", "x509", *RECEIPT_ID_ATTR, forged).returncode


def test_xmlsec1_does_not_check_whose_certificate_signed_the_receipt(
    xmlsec1_tool: None, settings: Settings, receipt_file: Path, tmp_path: Path
) -> None:
    """A participant's certificate chains to the same CA: the signer must be checked to be the gateway."""
    key, cert = participant_key(settings)
    forged = _forge(receipt_file, tmp_path, key, [cert], "x509-data")
    ca = settings.keys_dir / "ca" / "ca.cert.pem"
    result = xmlsec1("--verify", "--trusted-pem", ca, "--enabled-key-data", "x509", *RECEIPT_ID_ATTR, forged)
    assert result.returncode == 0, result.stderr
    # The SDK checks the certificate's subject serialNumber is the gateway's; docs/signing.md says how by hand.
    receipt = etree.parse(str(forged)).getroot().find(".//gw:Receipt", NS)
    assert receipt is not None
    with pytest.raises(ReceiptInvalid, match="not signed with a gateway certificate"):
        verify_receipt(receipt, (ca,))


# --- 3. what the SDK signs, checked by xmlsec1 ---------------------------------------------------


@pytest.mark.parametrize("key_info", ["x509-data", "binary-token"])
def test_a_message_signed_by_the_sdk_verifies_with_xmlsec1(
    xmlsec1_tool: None, settings: Settings, sign: Signer, tmp_path: Path, key_info: KeyInfoStyle
) -> None:
    signed = sign(registration(), key_info=key_info)
    root = etree.fromstring(signed)
    parts = [root.find(BODY), root.find(f"{HEADER}/{ROUTING}"), root.find(f".//{TIMESTAMP}")]
    # The SDK references the parts by the namespaced wsu:Id, not an unqualified Id.
    assert all(part is not None and part.get(WSU_ID) and part.get("Id") is None for part in parts)
    message = tmp_path / "sdk.signed.xml"
    message.write_bytes(signed)
    _, cert = participant_key(settings)
    if key_info == "x509-data":
        keys: list[str | Path] = [
            "--trusted-pem",
            settings.keys_dir / "ca" / "ca.cert.pem",
            "--enabled-key-data",
            "x509",
        ]
    else:
        # xmlsec1 cannot follow a wsse:SecurityTokenReference: hand it the token's certificate.
        token = token_certificate(signed)
        assert token == load_certificate(cert)
        (tmp_path / "token.pem").write_bytes(token.public_bytes(Encoding.PEM))
        keys = ["--pubkey-cert-pem", tmp_path / "token.pem"]

    result = xmlsec1("--verify", *keys, *ID_ATTRS, message)

    assert result.returncode == 0, result.stderr
    assert "SignedInfo References (ok/all): 3/3" in result.stderr
    # The --id-attr options are what resolves the wsu:Id references: without them xmlsec1 fails.
    assert xmlsec1("--verify", *keys, message).returncode != 0


# --- the committed examples (examples/signed/) ---------------------------------------------------


def test_the_example_template_signs_into_an_accepted_message(
    xmlsec1_tool: None, client: FlaskClient, settings: Settings, tmp_path: Path
) -> None:
    key, cert = participant_key(settings)
    template = refresh(TEMPLATE_EXAMPLE.read_bytes(), datetime.now(UTC))

    response = post(client, xmlsec1_sign(template, key, [cert], tmp_path))

    assert response.status_code == 200, response.text
    assert list(acknowledged_digests(receipt_of(response))) == ["Body", "Timestamp", "Routing"]


def test_the_signed_example_verifies_with_xmlsec1_and_chains_to_its_example_ca(
    xmlsec1_tool: None, tmp_path: Path
) -> None:
    token = token_certificate(SIGNED_EXAMPLE.read_bytes())
    token.verify_directly_issued_by(load_certificate(EXAMPLE_CA))
    (tmp_path / "token.pem").write_bytes(token.public_bytes(Encoding.PEM))

    result = xmlsec1("--verify", "--pubkey-cert-pem", tmp_path / "token.pem", *ID_ATTRS, SIGNED_EXAMPLE)

    assert result.returncode == 0, result.stderr
    assert "SignedInfo References (ok/all): 3/3" in result.stderr


def test_the_signed_example_is_refused_by_any_real_gateway(client: FlaskClient) -> None:
    """Its Timestamp is old (once regenerated, for the first minutes: its certificate is from a foreign CA)."""
    data = SIGNED_EXAMPLE.read_bytes()
    created = etree.fromstring(data).findtext(".//wsu:Timestamp/wsu:Created", namespaces=NS)
    assert created
    age = datetime.now(UTC) - datetime.fromisoformat(created.replace("Z", "+00:00"))
    stale = timedelta(minutes=6)  # 5 minutes plus 60 s of clock skew
    expected = (
        {"TIMESTAMP_STALE"}
        if age > stale + timedelta(seconds=10)
        else {"CERT_UNTRUSTED"}
        if age < stale - timedelta(seconds=10)
        else {"TIMESTAMP_STALE", "CERT_UNTRUSTED"}
    )

    response = post(client, data)

    assert response.status_code == 500
    assert fault_code(response) in expected
