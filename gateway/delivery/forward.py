"""The ``gw:Delivery`` the gateway hands to a recipient: routing facts plus the original envelope, signed.

Push and pull use the same element: pushed to the recipient's ``Deliver`` operation, or listed in
a mailbox fetch. The original envelope goes in unchanged (decrypted from the store, parsed with
the hardened parser), so the recipient can check the sender's own signature: exclusive C14N makes
the signed parts' digests independent of where they now sit.
"""

from __future__ import annotations

from lxml import etree
from lxml.builder import ElementMaker

from gateway.intake.catalog import GATEWAY_NS
from gateway.messages.models import Message
from gateway.messages.payloads import PayloadCipher
from gateway.security.signer import GatewaySigner
from gateway.xmlparse import XmlLimits, parse_untrusted

_GW = ElementMaker(namespace=GATEWAY_NS, nsmap={"gw": GATEWAY_NS})


def delivery_element(
    message: Message, recipient_id: str, attempt: int, signer: GatewaySigner, payloads: PayloadCipher
) -> etree._Element:
    """The signed ``gw:Delivery`` of ``message`` for ``recipient_id``, with the envelope decrypted.

    Raises :class:`gateway.errors.PayloadUnavailable` when the stored envelope cannot be opened.
    """
    # Accepted under the limits of its day, which an operator may since have lowered.
    original = parse_untrusted(payloads.open_envelope(message), XmlLimits.widest()).getroot()
    fields = [
        _GW.MessageId(message.message_id),
        _GW.Sender(message.sender_id),
        _GW.Recipient(recipient_id),
        _GW.Service(_GW.Name(message.service), _GW.Version(message.service_version)),
    ]
    if message.correlation_id:
        fields.append(_GW.CorrelationId(message.correlation_id))
    fields += [
        _GW.ReceivedAt(message.received_at.isoformat().replace("+00:00", "Z")),
        _GW.Attempt(str(max(attempt, 1))),
        _GW.Original(original),
    ]
    element: etree._Element = _GW.Delivery(*fields, Id=f"delivery-{message.message_id}")
    return signer.sign_enveloped(element)
