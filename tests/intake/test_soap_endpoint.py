"""POST /soap: acceptance of every example, and each refusal with its own fault code."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from lxml import etree
from sqlalchemy import select

from gateway.intake.catalog import ServiceCatalog
from gateway.messages.models import Message
from gateway.registry.services import set_enabled
from gateway.sdk.envelope import wrap
from gateway.settings import SCHEMAS_DIR
from gateway.store.db import transaction
from tests.conftest import (
    EDUCATION_DEPARTMENT,
    EXAMPLES,
    UNIVERSITY,
    Signer,
    example,
    receipt_bytes,
)

NS = {"soapenv": "http://schemas.xmlsoap.org/soap/envelope/", "gw": "urn:gradex:gateway:1"}
SERVICES = ServiceCatalog(SCHEMAS_DIR).services


def post(client: FlaskClient, data: bytes, content_type: str = "text/xml; charset=utf-8") -> tuple[int, etree._Element]:
    response = client.post("/soap", data=data, content_type=content_type)
    return response.status_code, etree.fromstring(response.data)


def fault_code(body: etree._Element) -> str:
    code = body.findtext(".//gw:FaultDetail/gw:Code", namespaces=NS)
    assert code, etree.tostring(body)
    return code


@pytest.fixture
def registration(sign: Signer) -> Callable[..., bytes]:
    """A signed destination registration, with routing changed as asked."""

    def build(**routing: str | None) -> bytes:
        fields: dict[str, str | None] = {
            "sender": UNIVERSITY,
            "recipient": EDUCATION_DEPARTMENT,
            "service": "DestinationRegistration",
        }
        fields.update(routing)
        signer = fields.pop("signer", None) or UNIVERSITY
        return sign(wrap(example("destination-registration"), **fields), as_=signer)  # type: ignore[arg-type]

    return build


def kebab(name: str) -> str:
    return "".join("-" + c.lower() if c.isupper() else c for c in name).lstrip("-")


def test_every_business_service_of_the_wsdl_has_an_example() -> None:
    missing = [s.name for s in SERVICES if not s.is_plumbing and not (EXAMPLES / f"{kebab(s.name)}.xml").exists()]
    assert missing == []


def test_role_and_region_resolve_by_walking_up_the_regions(client: FlaskClient, sign: Signer) -> None:
    # A university in Haidian (110108) reports to "the education department responsible for 110108":
    # none sits in the county or the city, so the walk reaches the province's (110000).
    data = sign(
        wrap(
            example("destination-registration"),
            sender=UNIVERSITY,
            role="education_department",
            region="110108",
            service="DestinationRegistration",
        ),
        as_=UNIVERSITY,
    )
    status, body = post(client, data)
    assert status == 200, etree.tostring(body)
    assert body.findtext(".//gw:Receipt/gw:Recipient", namespaces=NS) == EDUCATION_DEPARTMENT


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"<soapenv:Envelope", "XML_MALFORMED"),
        (b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', "XML_ENTITY_FORBIDDEN"),
        (b'<!DOCTYPE x SYSTEM "http://127.0.0.1:9/x.dtd"><x/>', "XML_DTD_FORBIDDEN"),
        (b"<a>" * 200 + b"</a>" * 200, "XML_TOO_DEEP"),
        (b"<notsoap/>", "SOAP_ENVELOPE_INVALID"),
        (
            b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body/></e:Envelope>',
            "SOAP_ENVELOPE_INVALID",
        ),
        (
            b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Header/><e:Body><x/></e:Body>'
            b"</e:Envelope>",
            "ROUTING_HEADER_MISSING",
        ),
    ],
    ids=["malformed", "entity", "dtd", "deep", "not-soap", "no-header", "no-routing"],
)
def test_xml_and_envelope_faults(client: FlaskClient, data: bytes, code: str) -> None:
    status, body = post(client, data)
    assert status == 500
    assert body.findtext(".//faultcode") == "soapenv:Client"
    assert fault_code(body) == code


def test_schema_violation_names_element_and_line(client: FlaskClient, sign: Signer) -> None:
    document = example("destination-registration").replace(b"<reg:DestinationCode>", b"<reg:DestinationCode>x", 1)
    data = sign(wrap(document, sender=UNIVERSITY, recipient=EDUCATION_DEPARTMENT, service="DestinationRegistration"))
    status, body = post(client, data)
    assert status == 500
    assert fault_code(body) == "SCHEMA_VIOLATION"
    message = body.findtext(".//gw:FaultDetail/gw:Message", namespaces=NS) or ""
    line = next(n for n, text in enumerate(data.splitlines(), 1) if b"<reg:DestinationCode>x" in text)
    assert f"line {line}" in message
    assert "DestinationCode" in message


def test_identity_numbers_never_echo_in_faults(client: FlaskClient, sign: Signer) -> None:
    # A schema error quotes the offending value; a valid identity number in it is masked.
    document = example("destination-registration")
    start = document.index(b"<reg:DestinationCode>") + len(b"<reg:DestinationCode>")
    end = document.index(b"</reg:DestinationCode>")
    document = document[:start] + b"11010519491231002X" + document[end:]
    data = sign(wrap(document, sender=UNIVERSITY, recipient=EDUCATION_DEPARTMENT, service="DestinationRegistration"))
    status, body = post(client, data)
    assert status == 500
    assert fault_code(body) == "SCHEMA_VIOLATION"
    assert b"[identity number]" in etree.tostring(body)
    assert b"11010519491231002X" not in etree.tostring(body)


@pytest.mark.parametrize(
    ("routing", "code"),
    [
        ({"service": "ArchiveReceipt"}, "SERVICE_MISMATCH"),
        ({"service": "NoSuchService"}, "UNKNOWN_SERVICE"),
        ({"version": "2"}, "UNKNOWN_SERVICE"),
        ({"sender": "91110000600037341L"}, "UNKNOWN_SENDER"),
        ({"recipient": "91110000600037341L"}, "UNKNOWN_RECIPIENT"),
        ({"recipient": None, "role": "talent_service_agency", "region": "440300"}, "UNKNOWN_RECIPIENT"),
        ({"sender": "12110108400000008"}, "SCHEMA_VIOLATION"),
    ],
)
def test_routing_faults(client: FlaskClient, routing: dict[str, str], code: str, registration) -> None:  # type: ignore[no-untyped-def]
    status, body = post(client, registration(**routing))
    assert status == 500
    assert fault_code(body) == code


def test_disabled_sender_and_recipient(client: FlaskClient, app, registration) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    with transaction(app.extensions["gateway"].sessions) as session:
        set_enabled(session, EDUCATION_DEPARTMENT, False, datetime.now(UTC))
    assert fault_code(post(client, registration())[1]) == "RECIPIENT_DISABLED"
    assert fault_code(
        post(client, registration(sender=EDUCATION_DEPARTMENT, recipient=UNIVERSITY, signer=EDUCATION_DEPARTMENT))[1]
    ) == ("SENDER_DISABLED")


def test_a_resend_gets_its_receipt_a_reused_id_is_refused_and_both_are_stored_once(  # type: ignore[no-untyped-def]
    client: FlaskClient, app, registration, sign
) -> None:
    message_id = str(uuid.uuid4())
    data = registration(message_id=message_id)
    first = client.post("/soap", data=data, content_type="text/xml; charset=utf-8")
    assert first.status_code == 200
    again = client.post("/soap", data=data, content_type="text/xml; charset=utf-8")  # the very same message
    assert again.status_code == 200
    assert receipt_bytes(again.data) == receipt_bytes(first.data)  # the original signed receipt, byte for byte
    document = example("destination-registration").replace("李明".encode(), "李敏".encode(), 1)
    other = sign(
        wrap(
            document,
            sender=UNIVERSITY,
            recipient=EDUCATION_DEPARTMENT,
            service="DestinationRegistration",
            message_id=message_id,
        )
    )
    status, body = post(client, other)  # another document reusing the id
    assert status == 500
    assert fault_code(body) == "DUPLICATE_MESSAGE"
    with transaction(app.extensions["gateway"].sessions) as session:
        assert len(list(session.scalars(select(Message)))) == 1


def test_oversized_message_is_refused_before_parsing(client: FlaskClient, settings, registration) -> None:  # type: ignore[no-untyped-def]
    too_big = b"<x>" + b"a" * settings.max_message_bytes + b"</x>"
    status, body = post(client, too_big)
    assert status == 413
    assert fault_code(body) == "PAYLOAD_TOO_LARGE"
    # and the gateway goes on serving
    assert post(client, registration())[0] == 200


def test_wrong_content_type(client: FlaskClient, registration) -> None:  # type: ignore[no-untyped-def]
    status, body = post(client, registration(), content_type="application/json")
    assert status == 415
    assert fault_code(body) == "UNSUPPORTED_MEDIA_TYPE"


def test_wsdl_and_schemas_are_published(client: FlaskClient) -> None:
    response = client.get("/soap?wsdl")
    assert response.status_code == 200
    wsdl = etree.fromstring(response.data)
    locations = wsdl.xpath("//*[local-name()='import']/@schemaLocation")
    base = "http://127.0.0.1:8080"  # the embedded default's address (tests/intake/test_published_address.py)
    assert f"{base}/schemas/gateway-1.xsd" in locations
    for location in locations:
        assert client.get(location.removeprefix(base)).status_code == 200
    assert wsdl.xpath("//*[local-name()='address']/@location") == [f"{base}/soap"]
    recipient_wsdl = client.get("/schemas/recipient-1.wsdl")
    assert recipient_wsdl.status_code == 200 and b"DeliveryAcknowledgement" in recipient_wsdl.data
    assert client.get("/schemas/../pyproject.toml").status_code == 404
    assert client.get("/schemas/nothing.xsd").status_code == 404


def test_examples_readme_lists_every_example() -> None:
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    for path in Path(EXAMPLES).glob("*.xml"):
        assert path.name in readme
