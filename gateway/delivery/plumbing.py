"""The plumbing services: what a participant asks the gateway itself about delivery.

- ``FetchMessages`` and ``AcknowledgeMessages`` work the participant's own pull mailbox
  (``gateway.delivery.mailbox``); a fetch answers one gateway-signed ``gw:Delivery`` per message
  (a message whose stored envelope cannot be decrypted is left out and offered again later).
- ``MessageStatus`` answers the lifecycle of each delivery of a message the participant sent.
- ``DeliveryReceiptRequest`` answers the gateway-signed ``gw:DeliveryReceipt`` once every delivery
  of that message is delivered (non-repudiation of delivery).

A plumbing request passes every intake check a business document passes (schema, signature,
timestamp, replay) and is stored, in the same transaction; this last stage sets ``inbound.answer``.
A fault here rolls the whole request back: nothing is claimed, nothing stored.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from lxml import etree
from lxml.builder import ElementMaker
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.audit.entries import AuditEvent
from gateway.audit.log import record
from gateway.delivery import mailbox
from gateway.delivery.forward import delivery_element
from gateway.delivery.policy import RetryPolicy
from gateway.errors import MessageUnknown, NotYetDelivered, PayloadUnavailable, UnknownService
from gateway.intake.catalog import GATEWAY_NS
from gateway.intake.pipeline import Inbound
from gateway.messages.models import Delivery, DeliveryStatus, Message
from gateway.messages.payloads import PayloadCipher
from gateway.security.signer import GatewaySigner

log = logging.getLogger(__name__)
_GW = ElementMaker(namespace=GATEWAY_NS, nsmap={"gw": GATEWAY_NS})
NS = {"gw": GATEWAY_NS}
DEFAULT_FETCH = 10  # gateway-1.xsd: FetchMessages/MaxMessages default


@dataclass(frozen=True)
class AnswerPlumbing:
    """The intake stage that answers plumbing services (and lets business documents pass)."""

    signer: GatewaySigner
    payloads: PayloadCipher
    policy: RetryPolicy = field(default_factory=RetryPolicy)

    def __call__(self, inbound: Inbound, session: Session) -> None:
        service = inbound.service
        if service is None or not service.is_plumbing:
            return
        assert inbound.parts is not None and inbound.sender is not None
        handler = _HANDLERS.get(service.name)
        if handler is None:
            raise UnknownService(f"the gateway does not answer {service.name} (yet)")
        inbound.answer = handler(self, inbound.parts.document, inbound.sender.id, inbound.received_at, session)

    def fetch_messages(
        self, request: etree._Element, participant_id: str, now: datetime, session: Session
    ) -> etree._Element:
        limit = int(_text(request, "gw:MaxMessages") or DEFAULT_FETCH)  # 1..100 by the schema
        answer: etree._Element = _GW.FetchMessagesResponse()
        for delivery in mailbox.fetch(session, participant_id, limit, now, self.policy):
            try:
                element = delivery_element(
                    delivery.message, participant_id, delivery.attempts, self.signer, self.payloads
                )
            except PayloadUnavailable as exc:
                # One message whose key is lost must not block the mailbox: it stays claimed and is
                # offered again after the visibility timeout (once the key is restored, say).
                log.error("cannot hand %s to %s: %s", delivery.message.message_id, participant_id, exc)
                delivery.last_error = f"{type(exc).__name__}: {exc}"[:500]
                continue
            answer.append(element)
        return answer

    def acknowledge_messages(
        self, request: etree._Element, participant_id: str, now: datetime, session: Session
    ) -> etree._Element:
        refs = [
            mailbox.MessageRef(_text(node, "gw:MessageId"), _text(node, "gw:Sender"))
            for node in request.iterfind("gw:Message", NS)
        ]
        answer: etree._Element = _GW.AcknowledgeMessagesResponse()
        for ref, outcome in zip(refs, mailbox.acknowledge(session, participant_id, refs, now), strict=True):
            answer.append(_GW.Result(_GW.MessageId(ref.message_id), _GW.Sender(ref.sender), _GW.Status(outcome)))
        return answer

    def message_status(
        self, request: etree._Element, participant_id: str, now: datetime, session: Session
    ) -> etree._Element:
        message = own_message(session, participant_id, _text(request, "gw:MessageId"))
        answer: etree._Element = _GW.MessageStatusResponse(
            _GW.MessageId(message.message_id),
            _GW.Service(_GW.Name(message.service), _GW.Version(message.service_version)),
            _GW.ReceivedAt(_instant(message.received_at)),
        )
        for delivery in _deliveries(message):
            answer.append(delivery_state(delivery))
        return answer

    def delivery_receipt(
        self, request: etree._Element, participant_id: str, now: datetime, session: Session
    ) -> etree._Element:
        message = own_message(session, participant_id, _text(request, "gw:MessageId"))
        deliveries = _deliveries(message)
        pending = [d for d in deliveries if d.status != DeliveryStatus.DELIVERED]
        if pending or not deliveries:
            where = "; ".join(f"to {d.recipient_id} {d.status} after {d.attempts} attempt(s)" for d in pending)
            raise NotYetDelivered(
                f"message {message.message_id} is not delivered yet ({where or 'no delivery'}); "
                "MessageStatus tells when it is"
            )
        receipt = build_delivery_receipt(message, deliveries, now, self.signer)
        # The acceptance receipt's issue is the ``message.accepted`` entry it names; a delivery
        # receipt is issued later, on request, so it gets an entry of its own.
        record(
            session,
            AuditEvent(
                "receipt.issued",
                now,
                {
                    "receipt": "delivery",
                    "message_id": message.message_id,
                    "sender": message.sender_id,
                    "receipt_sha256": hashlib.sha256(
                        etree.tostring(receipt, method="c14n", exclusive=True)
                    ).hexdigest(),
                },
                message_id=message.message_id,
            ),
        )
        return receipt


Handler = Callable[[AnswerPlumbing, etree._Element, str, datetime, Session], etree._Element]
_HANDLERS: dict[str, Handler] = {
    "FetchMessages": AnswerPlumbing.fetch_messages,
    "AcknowledgeMessages": AnswerPlumbing.acknowledge_messages,
    "MessageStatus": AnswerPlumbing.message_status,
    "DeliveryReceiptRequest": AnswerPlumbing.delivery_receipt,
}
PLUMBING_SERVICES = frozenset(_HANDLERS)


def own_message(session: Session, sender_id: str, message_id: str) -> Message:
    """The business message ``message_id`` that ``sender_id`` sent; raises :class:`MessageUnknown`.

    Another sender's message with the same id is not told apart from one that does not exist.
    """
    message = session.scalar(
        select(Message).where(
            Message.sender_id == sender_id,
            Message.message_id == message_id,
            Message.service.not_in(PLUMBING_SERVICES),
        )
    )
    if message is None:
        raise MessageUnknown(f"no message {message_id} from {sender_id}")
    return message


def delivery_state(delivery: Delivery) -> etree._Element:
    """One ``gw:DeliveryState`` of a ``gw:MessageStatusResponse``."""
    state: etree._Element = _GW.DeliveryState(
        _GW.Recipient(delivery.recipient_id),
        _GW.Mode(delivery.mode),
        _GW.Status(delivery.status),
        _GW.Attempts(str(delivery.attempts)),
        _GW.CreatedAt(_instant(delivery.created_at)),
    )
    moments = (
        ("QueuedAt", delivery.enqueued_at),
        ("LastAttemptAt", delivery.claimed_at),  # pushed or fetched
        ("DeliveredAt", delivery.delivered_at),
        ("NextAttemptAt", delivery.next_attempt_at),
    )
    for name, moment in moments:
        if moment is not None:
            state.append(_GW(name, _instant(moment)))
    if delivery.last_error:
        state.append(_GW.LastError(delivery.last_error))
    return state


def build_delivery_receipt(
    message: Message, deliveries: Sequence[Delivery], issued_at: datetime, signer: GatewaySigner
) -> etree._Element:
    """The gateway-signed ``gw:DeliveryReceipt`` of ``message``, delivered as ``deliveries`` say."""
    receipt: etree._Element = _GW.DeliveryReceipt(
        _GW.MessageId(message.message_id),
        _GW.Sender(message.sender_id),
        _GW.Service(_GW.Name(message.service), _GW.Version(message.service_version)),
        _GW.ReceivedAt(_instant(message.received_at)),
        _GW.BodySha256(message.body_sha256),
        *(
            _GW.Delivered(_GW.Recipient(d.recipient_id), _GW.DeliveredAt(_instant(d.delivered_at or issued_at)))
            for d in deliveries
        ),
        _GW.IssuedAt(_instant(issued_at)),
        Id=f"delivery-receipt-{message.message_id}",
    )
    return signer.sign_enveloped(receipt)


def _deliveries(message: Message) -> list[Delivery]:
    return sorted(message.deliveries, key=lambda d: d.id)


def _text(element: etree._Element, path: str) -> str:
    return (element.findtext(path, namespaces=NS) or "").strip()


def _instant(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
