"""Standard SOAP clients against a served gateway: zeep loads the WSDL over HTTP and sends messages.

Three ways to sign with zeep: the SDK's ``GatewaySignature`` plugin, and zeep's own
``Signature`` and ``BinarySignature`` (RSA-SHA256, SHA-256, through the xmlsec package) composed
after ``RoutingTimestamp``, which binds the routing header into the Timestamp they sign.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
import xmlsec
import zeep
from lxml import etree
from zeep.exceptions import Fault as ZeepFault
from zeep.wsse.compose import Compose
from zeep.wsse.signature import BinarySignature, Signature

from gateway.sdk.receipts import sent_digests, verify_receipt
from gateway.sdk.zeep_plugins import GatewaySignature, RoutingTimestamp
from tests.conftest import EDUCATION_DEPARTMENT, UNIVERSITY, credentials, example

pytestmark = pytest.mark.slow
ELEMENTS = {
    "DestinationRegistration": "{urn:gradex:registration:1}DestinationRegistration",
    "GraduateVerificationRequest": "{urn:gradex:verification:1}GraduateVerificationRequest",
}
RECEIPT = "{urn:gradex:gateway:1}Receipt"


def routing(client: zeep.Client, service: str, message_id: str, sender: str = UNIVERSITY) -> Any:
    return client.get_element("{urn:gradex:gateway:1}Routing")(
        MessageId=message_id,
        Sender=sender,
        Recipient={"Participant": EDUCATION_DEPARTMENT},
        Service={"Name": service, "Version": "1"},
        CreatedAt="2026-06-01T08:00:00Z",
    )


def document_fields(client: zeep.Client, service: str, example_name: str) -> dict[str, Any]:
    # zeep reads the example into its own objects and serialises them again from the WSDL's types.
    parsed = client.get_element(ELEMENTS[service]).parse(etree.fromstring(example(example_name)), client.wsdl.types)
    return {key: parsed[key] for key in parsed}


@pytest.mark.parametrize(
    ("service", "example_name", "sender"),
    [
        ("DestinationRegistration", "destination-registration", UNIVERSITY),
        # GraduateVerificationRequest needs a graduate's grant: tests/grants/test_zeep_verification.py
    ],
)
def test_sdk_plugin_sends_and_verifies_the_signed_receipt(
    gateway_url: str, served_home: Path, service: str, example_name: str, sender: str
) -> None:
    found = credentials(served_home / "keys", sender)
    anchors = (served_home / "keys" / "ca" / "ca.cert.pem",)
    client = zeep.Client(f"{gateway_url}/soap?wsdl", wsse=GatewaySignature(found.key, found.certificate, anchors))
    message_id = str(uuid.uuid4())
    operation = getattr(client.service, service)
    result = operation(
        **document_fields(client, service, example_name), _soapheaders=[routing(client, service, message_id, sender)]
    )
    assert result.MessageId == message_id
    assert result.Status == "accepted"
    assert result.Recipient == EDUCATION_DEPARTMENT
    assert [part.name for part in result.SignedParts.Part] == ["Body", "Timestamp", "Routing"]


@pytest.mark.parametrize("plugin_class", [Signature, BinarySignature], ids=["Signature", "BinarySignature"])
def test_zeeps_own_signature_plugins_are_accepted(gateway_url: str, served_home: Path, plugin_class: type) -> None:
    folder = served_home / "keys" / "participants" / UNIVERSITY
    plugin = plugin_class(
        str(folder / "key.pem"),
        str(folder / "cert.pem"),
        signature_method=xmlsec.Transform.RSA_SHA256,
        digest_method=xmlsec.Transform.SHA256,
    )
    client = zeep.Client(f"{gateway_url}/soap?wsdl", wsse=Compose([RoutingTimestamp(), plugin]))
    message_id = str(uuid.uuid4())
    # zeep's plugins would also check the *answer* with the client's own certificate, which the
    # gateway's receipt cannot pass; so build the signed request with zeep and post it as it is.
    envelope = client.create_message(
        client.service,
        "DestinationRegistration",
        **document_fields(client, "DestinationRegistration", "destination-registration"),
        _soapheaders=[routing(client, "DestinationRegistration", message_id)],
    )
    response = requests.post(
        f"{gateway_url}/soap", data=etree.tostring(envelope), headers={"Content-Type": "text/xml"}, timeout=10
    )
    assert response.status_code == 200, response.text
    receipt = etree.fromstring(response.content).find(f".//{RECEIPT}")
    assert receipt is not None
    verified = verify_receipt(receipt, (served_home / "keys" / "ca" / "ca.cert.pem",), sent_digests(envelope))
    assert verified.message_id == message_id
    assert set(verified.digests) == {"Body", "Timestamp", "Routing"}


def test_one_changed_byte_in_the_body_is_refused(gateway_url: str, served_home: Path) -> None:
    found = credentials(served_home / "keys", UNIVERSITY)
    client = zeep.Client(f"{gateway_url}/soap?wsdl", wsse=GatewaySignature(found.key, found.certificate))
    envelope = client.create_message(
        client.service,
        "DestinationRegistration",
        **document_fields(client, "DestinationRegistration", "destination-registration"),
        _soapheaders=[routing(client, "DestinationRegistration", str(uuid.uuid4()))],
    )
    data = etree.tostring(envelope)
    tampered = data.replace(b"RegisteredAt>2025", b"RegisteredAt>2024", 1)  # one byte in the Body
    assert tampered != data
    response = requests.post(f"{gateway_url}/soap", data=tampered, headers={"Content-Type": "text/xml"}, timeout=10)
    assert response.status_code == 500
    assert b"<gw:Code>SIGNATURE_INVALID</gw:Code>" in response.content


def test_zeep_sees_a_fault_with_its_code(gateway_url: str, served_home: Path) -> None:
    found = credentials(served_home / "keys", UNIVERSITY)
    client = zeep.Client(f"{gateway_url}/soap?wsdl", wsse=GatewaySignature(found.key, found.certificate))
    fields = document_fields(client, "DestinationRegistration", "destination-registration")
    header = routing(client, "ArchiveReceipt", str(uuid.uuid4()))
    with pytest.raises(ZeepFault) as raised:
        client.service.DestinationRegistration(**fields, _soapheaders=[header])
    assert raised.value.code.endswith("Client")
    assert raised.value.detail.findtext(".//{urn:gradex:gateway:1}Code") == "SERVICE_MISMATCH"


ATTACKS = {
    "XML_ENTITY_FORBIDDEN": b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;'
    b'&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><l>&c;</l>',
    "XML_DTD_FORBIDDEN": b'<?xml version="1.0"?><!DOCTYPE x SYSTEM "http://127.0.0.1:9/x.dtd"><x/>',
    "XML_TOO_DEEP": b"<a>" * 10000 + b"</a>" * 10000,
    "XML_MALFORMED": b"<soapenv:Envelope",
}


def test_served_gateway_refuses_each_attack_and_keeps_serving(gateway_url: str) -> None:
    for code, data in ATTACKS.items():
        response = requests.post(f"{gateway_url}/soap", data=data, headers={"Content-Type": "text/xml"}, timeout=10)
        assert response.status_code == 500
        assert f"<gw:Code>{code}</gw:Code>".encode() in response.content
        assert requests.get(f"{gateway_url}/healthz", timeout=5).status_code == 200


def test_served_health_readiness_and_large_payload(gateway_url: str) -> None:
    assert requests.get(f"{gateway_url}/healthz", timeout=5).json()["status"] == "ok"
    # The template home's audit entries were recorded when the test session began: later in a long
    # run they are older than the readiness lag limit until the served sequencer's first run (5 s).
    deadline = time.monotonic() + 20
    while (ready := requests.get(f"{gateway_url}/readyz", timeout=5).json())["status"] != "ready":
        assert time.monotonic() < deadline, ready["reasons"]
        time.sleep(0.5)
    assert ready["checks"]["database"]["ok"] and ready["checks"]["delivery_queue"]["ok"]
    response = requests.post(
        f"{gateway_url}/soap",
        data=b"<x>" + b"a" * (11 * 1024 * 1024) + b"</x>",
        headers={"Content-Type": "text/xml"},
        timeout=30,
    )
    assert response.status_code == 413
    assert b"PAYLOAD_TOO_LARGE" in response.content
    assert requests.get(f"{gateway_url}/healthz", timeout=5).status_code == 200
