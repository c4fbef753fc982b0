"""A standard SOAP client (zeep) loads the WSDL over HTTP from a served gateway and sends messages."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import zeep
from lxml import etree
from zeep.exceptions import Fault as ZeepFault

from tests.conftest import EDUCATION_DEPARTMENT, UNIVERSITY, example
from tests.serving import served_gateway

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gateway_url(template_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import shutil

    home = tmp_path_factory.mktemp("served") / "home"
    shutil.copytree(template_home, home)
    with served_gateway(home) as base:
        yield base


@pytest.fixture(scope="module")
def client(gateway_url: str) -> zeep.Client:
    return zeep.Client(f"{gateway_url}/soap?wsdl")


def routing(client: zeep.Client, service: str, message_id: str) -> object:
    routing_type = client.get_element("{urn:gradex:gateway:1}Routing")
    return routing_type(
        MessageId=message_id,
        Sender=UNIVERSITY,
        Recipient={"Participant": EDUCATION_DEPARTMENT},
        Service={"Name": service, "Version": "1"},
        CreatedAt="2026-06-01T08:00:00Z",
    )


@pytest.mark.parametrize(
    ("service", "example_name"),
    [
        ("DestinationRegistration", "destination-registration"),
        ("ArchiveTransferManifest", "archive-transfer-manifest"),
        ("AgreementOffer", "agreement-offer"),
    ],
)
def test_zeep_sends_an_example_and_gets_the_acceptance(client: zeep.Client, service: str, example_name: str) -> None:
    element = client.get_element(
        {
            "DestinationRegistration": "{urn:gradex:registration:1}DestinationRegistration",
            "ArchiveTransferManifest": "{urn:gradex:archive:1}ArchiveTransferManifest",
            "AgreementOffer": "{urn:gradex:agreement:1}AgreementOffer",
        }[service]
    )
    # zeep reads the example into its own objects and serialises them again from the WSDL's types.
    document = element.parse(etree.fromstring(example(example_name)), client.wsdl.types)
    message_id = str(uuid.uuid4())
    operation = getattr(client.service, service)
    result = operation(**{key: document[key] for key in document}, _soapheaders=[routing(client, service, message_id)])
    assert result.MessageId == message_id
    assert result.Status == "accepted"
    assert result.Recipient == EDUCATION_DEPARTMENT
    assert len(result.BodySha256) == 64


def test_zeep_sees_a_fault_with_its_code(client: zeep.Client) -> None:
    element = client.get_element("{urn:gradex:registration:1}DestinationRegistration")
    document = element.parse(etree.fromstring(example("destination-registration")), client.wsdl.types)
    header = routing(client, "ArchiveReceipt", str(uuid.uuid4()))
    with pytest.raises(ZeepFault) as raised:
        client.service.DestinationRegistration(**{k: document[k] for k in document}, _soapheaders=[header])
    assert raised.value.code.endswith("Client")
    assert raised.value.detail.findtext(".//{urn:gradex:gateway:1}Code") == "SERVICE_MISMATCH"


def test_served_health_readiness_and_large_payload(gateway_url: str) -> None:
    assert requests.get(f"{gateway_url}/healthz", timeout=5).json()["status"] == "ok"
    ready = requests.get(f"{gateway_url}/readyz", timeout=5).json()
    assert ready["status"] == "ready"
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
