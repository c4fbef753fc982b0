"""Compose a SOAP 1.1 envelope around a business document, with the gateway routing header."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from lxml import etree
from lxml.builder import ElementMaker

from gateway.intake.catalog import GATEWAY_NS, SOAP_ENV_NS
from gateway.xmlparse import parse_untrusted

_SOAP = ElementMaker(namespace=SOAP_ENV_NS, nsmap={"soapenv": SOAP_ENV_NS, "gw": GATEWAY_NS})
_GW = ElementMaker(namespace=GATEWAY_NS)


def wrap(
    document: bytes | etree._Element,
    *,
    sender: str,
    service: str,
    version: str = "1",
    recipient: str | None = None,
    role: str | None = None,
    region: str | None = None,
    message_id: str | None = None,
    created_at: datetime | None = None,
    correlation_id: str | None = None,
) -> bytes:
    """The envelope for ``document``, addressed to ``recipient`` or to ``role`` plus ``region``.

    ``message_id`` defaults to a new UUID, ``created_at`` to now. Raises ``ValueError`` when the
    recipient is named both ways or neither.
    """
    if (recipient is None) == (role is None or region is None):
        raise ValueError("name either a recipient participant or a role and a region")
    element = parse_untrusted(document).getroot() if isinstance(document, bytes) else document
    target = (
        _GW.Recipient(_GW.Participant(recipient)) if recipient else _GW.Recipient(_GW.Role(role), _GW.Region(region))
    )
    routing = _GW.Routing(
        _GW.MessageId(message_id or str(uuid.uuid4())),
        _GW.Sender(sender),
        target,
        _GW.Service(_GW.Name(service), _GW.Version(version)),
        _GW.CreatedAt((created_at or datetime.now(UTC)).isoformat().replace("+00:00", "Z")),
    )
    if correlation_id:
        routing.append(_GW.CorrelationId(correlation_id))
    envelope = _SOAP.Envelope(_SOAP.Header(routing), _SOAP.Body(element))
    return bytes(etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"))
