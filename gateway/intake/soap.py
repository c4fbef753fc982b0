"""The one place that turns outcomes into SOAP 1.1 responses: faults and acceptances."""

from __future__ import annotations

from lxml import etree
from lxml.builder import ElementMaker

from gateway.errors import Fault
from gateway.intake.catalog import GATEWAY_NS, SOAP_ENV_NS

_SOAP = ElementMaker(namespace=SOAP_ENV_NS, nsmap={"soapenv": SOAP_ENV_NS, "gw": GATEWAY_NS})
_PLAIN = ElementMaker()
_GW = ElementMaker(namespace=GATEWAY_NS, nsmap={"gw": GATEWAY_NS})


def envelope(body_child: etree._Element) -> bytes:
    """A SOAP 1.1 envelope with an empty Header and ``body_child`` in the Body, serialised."""
    document = _SOAP.Envelope(_SOAP.Header(), _SOAP.Body(body_child))
    return bytes(etree.tostring(document, xml_declaration=True, encoding="UTF-8"))


def fault_envelope(fault: Fault) -> bytes:
    """The SOAP Fault for ``fault``: faultcode Client or Server, the code and message in the detail."""
    detail = _GW.FaultDetail(_GW.Code(fault.code), _GW.Message(fault.message))
    if fault.message_id:
        detail.append(_GW.MessageId(fault.message_id))
    body = _SOAP.Fault(
        _PLAIN.faultcode(f"soapenv:{fault.faultcode}"),
        _PLAIN.faultstring(f"{fault.code}: {fault.message}"),
        _PLAIN.detail(detail),
    )
    return envelope(body)
