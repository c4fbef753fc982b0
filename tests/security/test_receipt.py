"""The receipt is written in exclusive canonical form and signed so (``build_receipt``,
``GatewaySigner.sign_canonical``): what lxml's exclusive C14N makes of the parsed receipt must be
the receipt itself, byte for byte, or its signature and the signed response's Body digest (which
takes the receipt as it is) would not verify. Checked with values that C14N escapes, references
in the default namespace and with an InclusiveNamespaces prefix list, and through the intake.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from flask.testing import FlaskClient
from lxml import etree
from signxml.verifier import SignatureConfiguration, XMLVerifier

from gateway.audit.log import LogPosition
from gateway.bootstrap import gateway_key_paths
from gateway.intake.catalog import GATEWAY_NS, SOAP_ENV_NS
from gateway.pki.keystore import PemKeyStore
from gateway.sdk.envelope import wrap
from gateway.sdk.receipts import ReceiptInvalid, verify_receipt, verify_signed_response
from gateway.security.policy import ALLOWED_DIGESTS, ALLOWED_SIGNATURE_METHODS, EXCLUSIVE_C14N
from gateway.security.receipt import ReceiptFacts, build_receipt
from gateway.security.signer import GatewaySigner, canonical_attribute, canonical_text
from gateway.security.wsse import DS_NS, WSSE_NS, SignedReference
from gateway.settings import Settings
from gateway.store.db import connect
from tests.conftest import EDUCATION_DEPARTMENT, UNIVERSITY, Signer, example, receipt_bytes

NS = {"gw": GATEWAY_NS, "ds": DS_NS, "soapenv": SOAP_ENV_NS}
PARSER = etree.XMLParser(resolve_entities=False, no_network=True)
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"


def canonical(data: bytes) -> bytes:
    return etree.tostring(etree.fromstring(data, PARSER), method="c14n", exclusive=True)


def signer(settings: Settings) -> GatewaySigner:
    key, cert = gateway_key_paths(settings.keys_dir)
    return GatewaySigner(PemKeyStore(key, cert, settings.key_passphrase))


SIGNXML_CONFIG = SignatureConfiguration(
    location="./",
    expect_references=1,
    signature_methods=ALLOWED_SIGNATURE_METHODS,
    digest_algorithms=ALLOWED_DIGESTS,
    default_reference_c14n_method=EXCLUSIVE_C14N,
)


def signing_certificate(settings: Settings) -> x509.Certificate:
    _key, cert = gateway_key_paths(settings.keys_dir)
    return x509.load_pem_x509_certificate(cert.read_bytes())


def anchors(settings: Settings) -> tuple[Path, ...]:
    return (settings.keys_dir / "ca" / "ca.cert.pem",)


def reference(xml: str, part: str = "Body") -> SignedReference:
    """A sender's ds:Reference as it sits in a signed envelope (other namespaces in scope)."""
    holder = etree.fromstring(
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV_NS}" xmlns:ds="{DS_NS}" xmlns:x="urn:unused">{xml}'
        "</soapenv:Envelope>",
        PARSER,
    )
    found = holder[0]
    return SignedReference(part, found.get("URI", ""), holder, found, SHA256, "digest")


def facts(**changes: object) -> ReceiptFacts:
    values: dict[str, object] = {
        "message_id": "msg-1",
        "sender_id": "GX-UNIV-10001",
        "recipient_id": "GX-EDU-GD",
        "service_name": "DestinationRegistration",
        "service_version": "1.0",
        "status": "accepted",
        "received_at": datetime(2027, 6, 1, 8, 30, 0, 123456, tzinfo=UTC),
        "certificate_sha256": "ab" * 32,
        "signature_sha256": "cd" * 32,
        "references": (
            reference(
                f'<ds:Reference URI="#Body-1"><ds:Transforms><ds:Transform Algorithm="{EXC_C14N}"/>'
                f'</ds:Transforms><ds:DigestMethod Algorithm="{SHA256}"/>'
                "<ds:DigestValue>AAAA</ds:DigestValue></ds:Reference>"
            ),
        ),
        "log_position": LogPosition(41, bytes(range(32))),
    }
    values.update(changes)
    return ReceiptFacts(**values)  # type: ignore[arg-type]


def test_the_escapes_are_canonical_xmls() -> None:
    assert canonical_text('a&b<c>d"e\rf\tg\nh') == 'a&amp;b&lt;c&gt;d"e&#xD;f\tg\nh'
    assert canonical_attribute('a&b<c>d"e\rf\tg\nh') == "a&amp;b&lt;c>d&quot;e&#xD;f&#x9;g&#xA;h"
    for value in ('a&b<c>d"e f\tg\nh', "plain"):
        element = etree.Element("e", a=value)
        element.text = value
        assert etree.tostring(element, method="c14n") == (
            f'<e a="{canonical_attribute(value)}">{canonical_text(value)}</e>'.encode()
        )


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"log_position": None},
        {"references": ()},
        {"message_id": "m&<>\"'1", "sender_id": "S&<", "service_name": "N>&"},
        {"message_id": "消息-一", "status": "accepted & kept"},
        {
            "references": (
                # the default namespace, an InclusiveNamespaces prefix list, attributes out of order
                reference(
                    f'<Reference xmlns="{DS_NS}" URI="#TS-1" Type="urn:t"><Transforms>'
                    f'<Transform Algorithm="{EXC_C14N}"><ec:InclusiveNamespaces xmlns:ec="{EXC_C14N}" '
                    'PrefixList="wsse soapenv"/></Transform></Transforms>'
                    f'<DigestMethod Algorithm="{SHA256}"/><DigestValue>BBBB</DigestValue></Reference>',
                    "Timestamp",
                ),
                reference(
                    f'<ds:Reference URI="#R-1"><ds:DigestMethod Algorithm="{SHA256}"/>'
                    "<ds:DigestValue>CC\nCC</ds:DigestValue></ds:Reference>",
                    'Rout"ing',
                ),
            )
        },
    ],
)
def test_the_receipt_is_its_own_exclusive_canonical_form_and_verifies(
    settings: Settings, changes: dict[str, object]
) -> None:
    receipt = build_receipt(facts(**changes), signer(settings))
    assert canonical(receipt) == receipt
    element = etree.fromstring(receipt, PARSER)
    if "'" in str(facts(**changes).message_id):
        # libxmlsec1 cannot address an Id with both quotes (its XPointer id() takes one kind): the
        # SDK refuses such a receipt, and signxml verifies the canonical form. (Message ids are
        # UUIDs: the gateway never writes such an Id.)
        with pytest.raises(ReceiptInvalid, match="does not verify"):
            verify_receipt(copy.deepcopy(element), anchors(settings))
        XMLVerifier().verify(
            element, x509_cert=signing_certificate(settings), id_attribute="Id", expect_config=SIGNXML_CONFIG
        )
        return
    verified = verify_receipt(element, anchors(settings))
    assert verified.message_id == facts(**changes).message_id
    assert element.get("Id") == f"receipt-{facts(**changes).message_id}"
    references = element.findall("gw:SignedParts/gw:Part/ds:Reference", NS)
    assert len(references) == len(facts(**changes).references)


def test_a_changed_receipt_does_not_verify(settings: Settings) -> None:
    receipt = build_receipt(facts(), signer(settings))
    changed = receipt.replace(b"<gw:Status>accepted<", b"<gw:Status>refused<")
    assert changed != receipt
    with pytest.raises(ReceiptInvalid):
        verify_receipt(etree.fromstring(changed, PARSER), anchors(settings))


def test_the_intakes_receipt_is_canonical_and_sent_as_it_is_stored(
    client: FlaskClient, settings: Settings, sign: Signer
) -> None:
    document = example("destination-registration")
    envelope = sign(
        wrap(document, sender=UNIVERSITY, recipient=EDUCATION_DEPARTMENT, service="DestinationRegistration")
    )
    response = client.post("/soap", data=envelope, content_type="text/xml")
    assert response.status_code == 200, response.data
    answer = etree.fromstring(response.data, PARSER)
    verify_signed_response(answer, anchors(settings))  # the Body digest, taken of the receipt as it is
    sent = receipt_bytes(response.data)
    assert canonical(sent) == sent
    verify_receipt(etree.fromstring(sent, PARSER), anchors(settings))
    engine = connect(settings.database_url)
    try:
        with engine.connect() as connection:
            stored = connection.exec_driver_sql("SELECT receipt FROM messages").scalar_one()
    finally:
        engine.dispose()
    assert stored == sent


def test_a_response_that_cannot_be_signed_still_carries_the_receipt(
    client: FlaskClient, settings: Settings, sign: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fall-back when the response's signature fails: the receipt (bytes) goes out, unsigned."""
    responses = client.application.extensions["gateway"].responses

    def broken(*_args: object, **_options: object) -> bytes:
        raise RuntimeError("no key")

    monkeypatch.setattr(responses, "envelope", broken)
    routing = {"sender": UNIVERSITY, "recipient": EDUCATION_DEPARTMENT, "service": "DestinationRegistration"}
    envelope = sign(wrap(example("destination-registration"), **routing))
    response = client.post("/soap", data=envelope, content_type="text/xml")
    assert response.status_code == 200, response.data
    answer = etree.fromstring(response.data, PARSER)
    assert answer.find("soapenv:Header/wsse:Security", {**NS, "wsse": WSSE_NS}) is None  # unsigned
    receipt = answer.find("soapenv:Body/gw:Receipt", NS)
    assert receipt is not None
    verify_receipt(etree.fromstring(etree.tostring(receipt), PARSER), anchors(settings))
