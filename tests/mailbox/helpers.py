"""Plumbing requests through /soap: build the request documents, sign them, read the answers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from lxml import etree
from lxml.builder import ElementMaker
from sqlalchemy import select, update

from gateway.intake.catalog import GATEWAY_NS, SOAP_ENV_NS
from gateway.messages.models import Delivery, Message
from gateway.sdk.envelope import wrap
from gateway.store.db import transaction
from tests.conftest import EDUCATION_DEPARTMENT, UNIVERSITY, Signer
from tests.domain.helpers import send

NS = {"gw": GATEWAY_NS, "soapenv": SOAP_ENV_NS}
# The message the mailbox tests send to the education department's pull mailbox: a registration can
# be sent again and again (a verification request would need a graduate's grant each time).
SENDER, SERVICE, DOCUMENT = UNIVERSITY, "DestinationRegistration", "destination-registration"
_GW = ElementMaker(namespace=GATEWAY_NS, nsmap={"gw": GATEWAY_NS})


def fetch_request(max_messages: int | None = None) -> etree._Element:
    request: etree._Element = _GW.FetchMessages()
    if max_messages is not None:
        request.append(_GW.MaxMessages(str(max_messages)))
    return request


def acknowledge_request(*refs: tuple[str, str]) -> etree._Element:
    request: etree._Element = _GW.AcknowledgeMessages(
        *(_GW.Message(_GW.MessageId(message_id), _GW.Sender(sender)) for message_id, sender in refs)
    )
    return request


def status_request(message_id: str) -> etree._Element:
    request: etree._Element = _GW.MessageStatus(_GW.MessageId(message_id))
    return request


def receipt_request(message_id: str) -> etree._Element:
    request: etree._Element = _GW.DeliveryReceiptRequest(_GW.MessageId(message_id))
    return request


def plumbing_envelope(sign: Signer, request: etree._Element, sender: str, recipient: str | None = None) -> bytes:
    """``request`` wrapped for its service, addressed to the sender's own mailbox, and signed."""
    service = etree.QName(request).localname
    return sign(wrap(request, sender=sender, recipient=recipient or sender, service=service), as_=sender)


@dataclass(frozen=True)
class Answer:
    status_code: int
    envelope: etree._Element
    fault_code: str | None
    fault_message: str

    @property
    def body(self) -> etree._Element:
        """The one document in the answer's Body (fails on a fault)."""
        assert self.fault_code is None, f"{self.fault_code}: {self.fault_message}"
        [child] = self.envelope.find("soapenv:Body", NS)
        return child


def post(client: FlaskClient, envelope: bytes) -> Answer:
    response = client.post("/soap", data=envelope, content_type="text/xml")
    root = etree.fromstring(response.data)
    code = root.findtext(".//gw:FaultDetail/gw:Code", namespaces=NS)
    message = root.findtext(".//gw:FaultDetail/gw:Message", namespaces=NS) or ""
    return Answer(response.status_code, root, code, message)


def ask(client: FlaskClient, sign: Signer, request: etree._Element, sender: str) -> Answer:
    return post(client, plumbing_envelope(sign, request, sender))


def send_to_pull_recipient(client: FlaskClient, sign: Signer) -> str:
    """A destination registration from the university to the education department (a pull mailbox)."""
    code, detail = send(client, sign, DOCUMENT, SENDER, EDUCATION_DEPARTMENT)
    assert code is None, detail
    return latest_message_id(client.application, SENDER)


def latest_message_id(app: Flask, sender: str) -> str:
    with transaction(app.extensions["gateway"].sessions) as session:
        found = session.scalars(
            select(Message.message_id).where(Message.sender_id == sender).order_by(Message.id.desc()).limit(1)
        ).one()
        return str(found)


def deliveries(app: Flask) -> list[Delivery]:
    with transaction(app.extensions["gateway"].sessions) as session:
        return list(session.scalars(select(Delivery).order_by(Delivery.id)))


def delivered_ids(answer: Answer) -> list[str]:
    """The message ids of the gw:Delivery elements of a FetchMessagesResponse, in order."""
    return [d.findtext("gw:MessageId", namespaces=NS) or "" for d in answer.body.iterfind("gw:Delivery", NS)]


def age_claims(app: Flask, seconds: float) -> None:
    """Move every fetched delivery's claim ``seconds`` into the past (instead of waiting)."""
    with transaction(app.extensions["gateway"].sessions) as session:
        for delivery in session.scalars(select(Delivery).where(Delivery.claimed_at.is_not(None))):
            assert delivery.claimed_at is not None
            session.execute(
                update(Delivery)
                .where(Delivery.id == delivery.id)
                .values(claimed_at=delivery.claimed_at - timedelta(seconds=seconds))
            )


def results(answer: Answer) -> Sequence[tuple[str, str, str]]:
    """(message id, sender, status) of each Result of an AcknowledgeMessagesResponse."""
    return [
        (
            r.findtext("gw:MessageId", namespaces=NS) or "",
            r.findtext("gw:Sender", namespaces=NS) or "",
            r.findtext("gw:Status", namespaces=NS) or "",
        )
        for r in answer.body.iterfind("gw:Result", NS)
    ]
