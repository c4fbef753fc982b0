"""The one place that turns outcomes into SOAP 1.1 responses: faults and acceptances."""

from __future__ import annotations

from lxml import etree
from lxml.builder import ElementMaker

from gateway.errors import Fault
from gateway.intake.catalog import GATEWAY_NS, SOAP_ENV_NS

_SOAP = ElementMaker(namespace=SOAP_ENV_NS, nsmap={"soapenv": SOAP_ENV_NS, "gw": GATEWAY_NS})
_PLAIN = ElementMaker()
_GW = ElementMaker(namespace=GATEWAY_NS, nsmap={"gw": GATEWAY_NS})


_OPEN = (
    b"<?xml version='1.0' encoding='UTF-8'?>\n"
    b'<soapenv:Envelope xmlns:soapenv="' + SOAP_ENV_NS.encode() + b'"><soapenv:Header/><soapenv:Body>'
)
_CLOSE = b"</soapenv:Body></soapenv:Envelope>"


def envelope(body_child: etree._Element) -> bytes:
    """A SOAP 1.1 envelope with an empty Header and ``body_child`` in the Body, serialised.

    The child is serialised on its own and spliced in, never moved into another tree: moving a
    signed element can make lxml rewrite the prefixes inside it (a ``soap-env:`` of an embedded
    original envelope becoming the outer ``soapenv:``), which changes its canonical form and breaks
    the signature.
    """
    return _OPEN + etree.tostring(body_child, encoding="UTF-8", xml_declaration=False) + _CLOSE


def fault_element(fault: Fault) -> etree._Element:
    """The soapenv:Fault for ``fault``: faultcode Client or Server, the code and message in the detail."""
    detail = _GW.FaultDetail(_GW.Code(fault.code), _GW.Message(fault.message))
    if fault.message_id:
        detail.append(_GW.MessageId(fault.message_id))
    element: etree._Element = _SOAP.Fault(
        _PLAIN.faultcode(f"soapenv:{fault.faultcode}"),
        _PLAIN.faultstring(f"{fault.code}: {fault.message}"),
        _PLAIN.detail(detail),
    )
    return element


def fault_envelope(fault: Fault) -> bytes:
    """The SOAP envelope of :func:`fault_element` (unsigned)."""
    document = _SOAP.Envelope(_SOAP.Header(), _SOAP.Body(fault_element(fault)))
    return bytes(etree.tostring(document, xml_declaration=True, encoding="UTF-8"))
