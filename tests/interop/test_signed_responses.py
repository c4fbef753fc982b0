"""The gateway signs its SOAP responses (answers and faults) with WS-Security, and stock clients check them.

Plain zeep: its own ``BinarySignature`` signs the request (after ``RoutingTimestamp``, which binds
the routing header into the Timestamp it signs) and zeep's own ``verify_envelope`` (xmlsec) checks
the answer inside ``client.service.X(...)``. zeep 4.3 checks an answer with the certificate it signs
with; :class:`CheckedWithTheGatewaysCertificate` points that same check at the gateway's
certificate instead (docs/integration.md shows it). The signed receipt in the Body is unchanged.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import xmlsec
import zeep
from lxml import etree
from zeep.exceptions import Fault as ZeepFault
from zeep.exceptions import SignatureVerificationFailed
from zeep.wsse.compose import Compose
from zeep.wsse.signature import BinarySignature, verify_envelope

from gateway.intake.catalog import GATEWAY_NS, SOAP_ENV_NS
from gateway.pki.keystore import PemKeyStore
from gateway.sdk.receipts import ReceiptInvalid, verify_receipt, verify_signed_response
from gateway.sdk.zeep_plugins import RoutingTimestamp
from gateway.security.response import ResponseSigner
from gateway.security.wsse import DS_NS, WSU_NS
from tests.conftest import EDUCATION_DEPARTMENT, PRIVATE_EMPLOYER, UNIVERSITY, example

pytestmark = pytest.mark.slow
REGISTRATION = "{urn:gradex:registration:1}DestinationRegistration"
NS = {"ds": DS_NS, "wsu": WSU_NS, "soapenv": SOAP_ENV_NS, "gw": GATEWAY_NS}


class CheckedWithTheGatewaysCertificate(BinarySignature):  # type: ignore[misc]
    """zeep's BinarySignature; its answer check (zeep's ``verify_envelope``) uses the gateway's certificate."""

    def __init__(self, key_file: str, cert_file: str, gateway_cert_file: str, **options: Any) -> None:
        super().__init__(key_file, cert_file, **options)
        self.gateway_cert_file = gateway_cert_file

    def verify(self, envelope: etree._Element) -> etree._Element:
        verify_envelope(envelope, self.gateway_cert_file)
        return envelope


def stock_zeep(gateway_url: str, home: Path, plugin_class: type = CheckedWithTheGatewaysCertificate) -> zeep.Client:
    folder = home / "keys" / "participants" / UNIVERSITY
    gateway_cert = str(home / "keys" / "gateway" / "cert.pem")
    extra = {"gateway_cert_file": gateway_cert} if plugin_class is not BinarySignature else {}
    plugin = plugin_class(
        str(folder / "key.pem"),
        str(folder / "cert.pem"),
        signature_method=xmlsec.Transform.RSA_SHA256,
        digest_method=xmlsec.Transform.SHA256,
        **extra,
    )
    return zeep.Client(f"{gateway_url}/soap?wsdl", wsse=Compose([RoutingTimestamp(), plugin]))


def registration(client: zeep.Client, recipient: str = EDUCATION_DEPARTMENT) -> dict[str, Any]:
    document = etree.fromstring(example("destination-registration"))
    parsed = client.get_element(REGISTRATION).parse(document, client.wsdl.types)
    routing = client.get_element(f"{{{GATEWAY_NS}}}Routing")(
        MessageId=str(uuid.uuid4()),
        Sender=UNIVERSITY,
        Recipient={"Participant": recipient},
        Service={"Name": "DestinationRegistration", "Version": "1"},
        CreatedAt=datetime.now(UTC),
    )
    return {**{key: parsed[key] for key in parsed}, "_soapheaders": [routing]}


def test_stock_zeep_sends_and_checks_the_signed_answer_through_client_service(
    gateway_url: str, served_home: Path
) -> None:
    client = stock_zeep(gateway_url, served_home)
    fields = registration(client)
    result = client.service.DestinationRegistration(**fields)  # zeep verifies the answer's signature
    assert result.Status == "accepted"
    assert result.MessageId == fields["_soapheaders"][0].MessageId
    assert [part.name for part in result.SignedParts.Part] == ["Body", "Timestamp", "Routing"]


def test_stock_zeep_checks_the_signed_fault_and_raises_it_with_its_code(gateway_url: str, served_home: Path) -> None:
    client = stock_zeep(gateway_url, served_home)
    with pytest.raises(ZeepFault) as raised:  # not SignatureVerificationFailed: the fault is signed too
        client.service.DestinationRegistration(**registration(client, recipient=PRIVATE_EMPLOYER))
    assert raised.value.detail.findtext(f".//{{{GATEWAY_NS}}}Code") == "ACCESS_DENIED"


def test_unchanged_binary_signature_checks_with_its_own_certificate_and_says_so(
    gateway_url: str, served_home: Path
) -> None:
    """Before responses were signed zeep crashed (AttributeError on the missing header); now its own
    check runs, and with the client's certificate, as zeep 4.3 does, it cannot pass."""
    client = stock_zeep(gateway_url, served_home, BinarySignature)
    with pytest.raises(SignatureVerificationFailed):
        client.service.DestinationRegistration(**registration(client))


@pytest.fixture(scope="module")
def response(gateway_url: str, served_home: Path) -> bytes:
    """A whole signed answer as it comes over HTTP: the request signed by zeep, posted as is."""
    client = stock_zeep(gateway_url, served_home)
    envelope = client.create_message(client.service, "DestinationRegistration", **registration(client))
    answer = requests.post(
        f"{gateway_url}/soap", data=etree.tostring(envelope), headers={"Content-Type": "text/xml"}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    return answer.content


def test_the_answer_is_signed_in_the_senders_profile_and_keeps_the_signed_receipt(
    response: bytes, served_home: Path
) -> None:
    root = etree.fromstring(response)
    security = root.find("soapenv:Header/{*}Security", NS)
    assert security is not None and security.get(f"{{{SOAP_ENV_NS}}}mustUnderstand") == "1"
    signature = security.find("ds:Signature", NS)
    assert signature is not None
    methods = {e.get("Algorithm") for e in signature.iter() if e.get("Algorithm")}
    assert methods == {
        "http://www.w3.org/2001/10/xml-exc-c14n#",
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",  # the development gateway key is EC P-256
        "http://www.w3.org/2001/04/xmlenc#sha256",
    }
    body, timestamp = root.find("soapenv:Body", NS), security.find("wsu:Timestamp", NS)
    assert body is not None and timestamp is not None
    uris = [r.get("URI") for r in signature.iterfind("ds:SignedInfo/ds:Reference", NS)]
    assert uris == [f"#{body.get(f'{{{WSU_NS}}}Id')}", f"#{timestamp.get(f'{{{WSU_NS}}}Id')}"]
    anchors = (served_home / "keys" / "ca" / "ca.cert.pem",)
    verify_signed_response(root, anchors)  # the SDK's check: chain, gateway certificate, coverage, value
    receipt = body.find("gw:Receipt", NS)
    assert receipt is not None
    assert verify_receipt(receipt, anchors).status == "accepted"  # the receipt's own signature holds


def test_a_changed_answer_fails_zeeps_check(response: bytes, served_home: Path) -> None:
    cert = str(served_home / "keys" / "gateway" / "cert.pem")
    verify_envelope(etree.fromstring(response), cert)
    changed = response.replace(b"<gw:Status>accepted</gw:Status>", b"<gw:Status>rejected</gw:Status>")
    assert changed != response
    with pytest.raises(SignatureVerificationFailed):
        verify_envelope(etree.fromstring(changed), cert)
    with pytest.raises(ReceiptInvalid):
        verify_signed_response(etree.fromstring(changed), (served_home / "keys" / "ca" / "ca.cert.pem",))


def test_a_comment_in_the_answer_is_refused_by_the_sdk(response: bytes, served_home: Path) -> None:
    """A comment is not signed (exclusive C14N): zeep's check passes it, and a reader of the Status
    would see "acc"; the SDK refuses it."""
    cert = str(served_home / "keys" / "gateway" / "cert.pem")
    changed = response.replace(b"<gw:Status>accepted</gw:Status>", b"<gw:Status>acc<!-- -->epted</gw:Status>")
    assert changed != response
    verify_envelope(etree.fromstring(changed), cert)  # the signature itself still holds
    with pytest.raises(ReceiptInvalid, match="comment or a processing instruction"):
        verify_signed_response(etree.fromstring(changed), (served_home / "keys" / "ca" / "ca.cert.pem",))


@pytest.mark.parametrize("algorithm", ["ec", "rsa"])
def test_the_hand_written_canonical_forms_are_what_lxml_canonicalises(
    algorithm: str, served_home: Path, tmp_path: Path
) -> None:
    """The Timestamp and SignedInfo are written in exclusive-C14N form: recompute every digest with lxml."""
    import base64
    import hashlib

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    from gateway.pki.keystore import write_private_key

    cert_pem = (served_home / "keys" / "gateway" / "cert.pem").read_bytes()
    if algorithm == "rsa":  # an operator's RSA gateway key: a self-signed certificate is enough here
        from datetime import timedelta

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.x509.oid import NameOID

        key: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rsa gateway")])
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(1)
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1))
            .sign(key, hashes.SHA256())
        )
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        write_private_key(tmp_path / "key.pem", key)
        (tmp_path / "cert.pem").write_bytes(cert_pem)
        keys = PemKeyStore(tmp_path / "key.pem", tmp_path / "cert.pem")
    else:
        keys = PemKeyStore(served_home / "keys" / "gateway" / "key.pem", served_home / "keys" / "gateway" / "cert.pem")
        assert isinstance(keys.signing_key(), ec.EllipticCurvePrivateKey)
    (tmp_path / "gateway.pem").write_bytes(cert_pem)
    # A Body child that uses the soapenv and wsu prefixes itself, as a mailbox answer's originals do.
    child = (
        f'<gw:Fetched xmlns:gw="{GATEWAY_NS}"><soapenv:Envelope xmlns:soapenv="{SOAP_ENV_NS}" '
        f'xmlns:wsu="{WSU_NS}"><soapenv:Body wsu:Id="Body-1">x &amp; y</soapenv:Body></soapenv:Envelope></gw:Fetched>'
    ).encode()
    signed = ResponseSigner(keys).envelope(child, datetime.now(UTC))
    root = etree.fromstring(signed)
    for reference in root.iterfind(".//ds:SignedInfo/ds:Reference", NS):
        target = root.xpath("//*[@wsu:Id=$id]", namespaces=NS, id=reference.get("URI", "")[1:])
        assert len(target) == 1  # the signature's Ids are unique, the inner Body-1 not among them
        digest = hashlib.sha256(etree.tostring(target[0], method="c14n", exclusive=True)).digest()
        assert reference.findtext("ds:DigestValue", namespaces=NS) == base64.b64encode(digest).decode()
    verify_envelope(root, str(tmp_path / "gateway.pem"))  # xmlsec: the SignedInfo form and the value


def test_the_answer_signature_verifies_with_the_xmlsec1_command_of_signing_md(
    response: bytes, served_home: Path, tmp_path: Path
) -> None:
    import shutil
    import subprocess

    from tests.conftest import require

    require("xmlsec1", lambda: subprocess.run(["xmlsec1", "--version"], capture_output=True, check=True))
    (tmp_path / "response.xml").write_bytes(response)
    shutil.copy(served_home / "keys" / "gateway" / "cert.pem", tmp_path / "gateway.cert.pem")
    command = [
        "xmlsec1", "--verify", "--pubkey-cert-pem", "gateway.cert.pem",
        "--id-attr:Id", "Body", "--id-attr:Id", "Timestamp", "response.xml",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "SignedInfo References (ok/all): 2/2" in result.stderr
    (tmp_path / "response.xml").write_bytes(response.replace(b"accepted", b"rejected", 1))
    changed = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert changed.returncode != 0
