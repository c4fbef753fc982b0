"""The recipient's side of push delivery: check a ``gw:Delivery`` and answer it.

    app = recipient_app(handle, anchor_files=(Path("keys/ca/ca.cert.pem"),))

serves ``POST /soap`` as ``schemas/recipient-1.wsdl`` describes: it verifies the gateway's
signature on the Delivery, hands the verified facts and the original signed envelope to
``handle``, and answers ``gw:DeliveryAcknowledgement`` with "accepted" when ``handle`` returns
True. It also de-duplicates by sender and message id: a Delivery seen before is acknowledged
again without calling ``handle`` (the gateway may deliver twice after a timeout), and a Delivery
whose earlier attempt is still being handled gets "rejected" (not yet) instead of a second call.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, Response, request
from lxml import etree
from lxml.builder import ElementMaker

from gateway.errors import GatewayError
from gateway.intake.catalog import GATEWAY_NS, SOAP_ENV_NS
from gateway.intake.soap import envelope
from gateway.sdk.receipts import ReceiptInvalid, verify_gateway_signed
from gateway.xmlparse import parse_untrusted

log = logging.getLogger(__name__)
_GW = ElementMaker(namespace=GATEWAY_NS, nsmap={"gw": GATEWAY_NS})
NS = {"gw": GATEWAY_NS}


@dataclass(frozen=True)
class VerifiedDelivery:
    message_id: str
    sender: str
    recipient: str
    service: str
    received_at: str
    attempt: int
    original: etree._Element  # the sender's signed envelope


def verify_delivery(delivery: etree._Element, anchor_files: Sequence[Path]) -> VerifiedDelivery:
    """The facts of a ``gw:Delivery`` whose gateway signature verifies; raises :class:`ReceiptInvalid`."""
    signed = verify_gateway_signed(delivery, f"{{{GATEWAY_NS}}}Delivery", anchor_files)
    original = signed.find("gw:Original/*", NS)
    if original is None:
        raise ReceiptInvalid("the delivery carries no original envelope")
    return VerifiedDelivery(
        message_id=signed.findtext("gw:MessageId", namespaces=NS) or "",
        sender=signed.findtext("gw:Sender", namespaces=NS) or "",
        recipient=signed.findtext("gw:Recipient", namespaces=NS) or "",
        service=signed.findtext("gw:Service/gw:Name", namespaces=NS) or "",
        received_at=signed.findtext("gw:ReceivedAt", namespaces=NS) or "",
        attempt=int(signed.findtext("gw:Attempt", namespaces=NS) or "1"),
        original=original,
    )


def acknowledgement(message_id: str, accepted: bool, detail: str = "") -> bytes:
    element = _GW.DeliveryAcknowledgement(_GW.MessageId(message_id), _GW.Status("accepted" if accepted else "rejected"))
    if detail:
        element.append(_GW.Detail(detail))
    return envelope(element)


def recipient_app(handle: Callable[[VerifiedDelivery], bool], anchor_files: Sequence[Path]) -> Flask:
    """A Flask app implementing the recipient WSDL around ``handle``."""
    app = Flask("gateway-recipient")
    seen: set[tuple[str, str]] = set()
    in_progress: set[tuple[str, str]] = set()
    lock = threading.Lock()

    @app.post("/soap")
    def deliver() -> Response:
        try:
            root = parse_untrusted(request.get_data()).getroot()
            element = root.find(f"{{{SOAP_ENV_NS}}}Body/{{{GATEWAY_NS}}}Delivery")
            if element is None:
                raise ReceiptInvalid("the Body holds no gw:Delivery")
            delivery = verify_delivery(element, anchor_files)
        except (GatewayError, ValueError) as exc:
            log.warning("refused a delivery: %s", exc)
            return Response(
                acknowledgement("00000000-0000-0000-0000-000000000000", False, str(exc)),
                400,
                content_type="text/xml; charset=utf-8",
            )
        key = (delivery.sender, delivery.message_id)
        with lock:
            if key in seen:
                duplicate, busy = True, False
            elif key in in_progress:
                duplicate, busy = False, True
            else:
                duplicate, busy = False, False
                in_progress.add(key)
        if busy:
            # The gateway gave up waiting for an earlier attempt that is still being handled: say
            # "not yet" rather than handle it twice; the gateway tries again later.
            return Response(
                acknowledgement(delivery.message_id, False, "still being handled"),
                200,
                content_type="text/xml; charset=utf-8",
            )
        accepted = duplicate
        if not duplicate:
            try:
                accepted = handle(delivery)
            finally:
                with lock:
                    in_progress.discard(key)
                    if accepted:
                        seen.add(key)
        return Response(acknowledgement(delivery.message_id, accepted), 200, content_type="text/xml; charset=utf-8")

    return app
