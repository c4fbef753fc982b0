"""Reading the gateway's answers to the plumbing services, on the agency's side.

``GatewayClient.fetch``, ``acknowledge``, ``status`` and ``delivery_receipt`` call these: fetched
messages and delivery receipts are accepted only when the gateway's signature on each verifies.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from lxml import etree

from gateway.intake.catalog import GATEWAY_NS
from gateway.sdk.receipts import ReceiptInvalid, verify_gateway_signed
from gateway.sdk.recipient import VerifiedDelivery, verify_delivery

NS = {"gw": GATEWAY_NS}
DELIVERY_RECEIPT = f"{{{GATEWAY_NS}}}DeliveryReceipt"
ANSWERS = {  # plumbing operation -> its answer element (schemas/gateway.wsdl)
    "FetchMessages": f"{{{GATEWAY_NS}}}FetchMessagesResponse",
    "AcknowledgeMessages": f"{{{GATEWAY_NS}}}AcknowledgeMessagesResponse",
    "MessageStatus": f"{{{GATEWAY_NS}}}MessageStatusResponse",
    "DeliveryReceiptRequest": DELIVERY_RECEIPT,
}


@dataclass(frozen=True)
class AcknowledgementResult:
    message_id: str
    sender: str
    status: str  # acknowledged | already_acknowledged | unknown


@dataclass(frozen=True)
class DeliveryState:
    """Where one delivery of a message stands (a ``gw:DeliveryState``)."""

    recipient: str
    mode: str
    status: str
    attempts: int
    created_at: datetime
    queued_at: datetime | None
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    next_attempt_at: datetime | None
    last_error: str | None


@dataclass(frozen=True)
class MessageStatusReport:
    message_id: str
    service: str
    received_at: datetime
    deliveries: tuple[DeliveryState, ...]


@dataclass(frozen=True)
class VerifiedDeliveryReceipt:
    """The facts of a ``gw:DeliveryReceipt`` whose gateway signature verified."""

    message_id: str
    sender: str
    service: str
    received_at: datetime
    body_sha256: str  # hex SHA-256 of the exclusive-C14N soap:Body the sender signed
    delivered: dict[str, datetime]  # recipient -> when it acknowledged
    issued_at: datetime
    xml: bytes


def read_fetched(answer: etree._Element, recipient: str, anchor_files: Sequence[Path]) -> list[VerifiedDelivery]:
    """The deliveries of a ``gw:FetchMessagesResponse``, each verified; raises :class:`ReceiptInvalid`."""
    found = []
    for element in answer.iterfind("gw:Delivery", NS):
        # Each on its own: Ids are unique per document, and a response holds many signed elements.
        delivery = verify_delivery(copy.deepcopy(element), anchor_files)
        if delivery.recipient != recipient:
            raise ReceiptInvalid(f"the gateway handed over a delivery for {delivery.recipient}, not for {recipient}")
        found.append(delivery)
    return found


def read_acknowledgements(answer: etree._Element) -> list[AcknowledgementResult]:
    """The results of a ``gw:AcknowledgeMessagesResponse``, in the order acknowledged."""
    return [
        AcknowledgementResult(_text(r, "gw:MessageId"), _text(r, "gw:Sender"), _text(r, "gw:Status"))
        for r in answer.iterfind("gw:Result", NS)
    ]


def read_status(answer: etree._Element) -> MessageStatusReport:
    """The facts of a ``gw:MessageStatusResponse``."""
    states = tuple(
        DeliveryState(
            recipient=_text(s, "gw:Recipient"),
            mode=_text(s, "gw:Mode"),
            status=_text(s, "gw:Status"),
            attempts=int(_text(s, "gw:Attempts") or "0"),
            created_at=_instant(_text(s, "gw:CreatedAt")),
            queued_at=_optional_instant(s, "gw:QueuedAt"),
            last_attempt_at=_optional_instant(s, "gw:LastAttemptAt"),
            delivered_at=_optional_instant(s, "gw:DeliveredAt"),
            next_attempt_at=_optional_instant(s, "gw:NextAttemptAt"),
            last_error=s.findtext("gw:LastError", namespaces=NS),
        )
        for s in answer.iterfind("gw:DeliveryState", NS)
    )
    return MessageStatusReport(
        message_id=_text(answer, "gw:MessageId"),
        service=_text(answer, "gw:Service/gw:Name"),
        received_at=_instant(_text(answer, "gw:ReceivedAt")),
        deliveries=states,
    )


def verify_delivery_receipt(
    receipt: etree._Element, anchor_files: Sequence[Path], message_id: str | None = None, sender: str | None = None
) -> VerifiedDeliveryReceipt:
    """Verify a ``gw:DeliveryReceipt`` (and that it is for ``message_id`` from ``sender``, when given).

    Raises :class:`ReceiptInvalid`.
    """
    signed = verify_gateway_signed(receipt, DELIVERY_RECEIPT, anchor_files)
    verified = VerifiedDeliveryReceipt(
        message_id=_text(signed, "gw:MessageId"),
        sender=_text(signed, "gw:Sender"),
        service=_text(signed, "gw:Service/gw:Name"),
        received_at=_instant(_text(signed, "gw:ReceivedAt")),
        body_sha256=_text(signed, "gw:BodySha256"),
        delivered={
            _text(d, "gw:Recipient"): _instant(_text(d, "gw:DeliveredAt")) for d in signed.iterfind("gw:Delivered", NS)
        },
        issued_at=_instant(_text(signed, "gw:IssuedAt")),
        xml=etree.tostring(receipt),
    )
    if message_id is not None and verified.message_id != message_id:
        raise ReceiptInvalid(f"the delivery receipt is for message {verified.message_id}, not {message_id}")
    if sender is not None and verified.sender != sender:
        raise ReceiptInvalid(f"the delivery receipt is for a message from {verified.sender}, not {sender}")
    return verified


def _text(element: etree._Element, path: str) -> str:
    return (element.findtext(path, namespaces=NS) or "").strip()


def _optional_instant(element: etree._Element, path: str) -> datetime | None:
    text = _text(element, path)
    return _instant(text) if text else None


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
