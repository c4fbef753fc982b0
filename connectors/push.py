"""The push connector: hands a signed ``gw:Delivery`` to the recipient's SOAP endpoint with zeep.

The recipient implements ``schemas/recipient-1.wsdl``. zeep's transport posts the envelope as
built (with the recipient's own timeout; one transport and its connection pool per timeout), and
the answer is read with the gateway's hardened parser: a ``gw:DeliveryAcknowledgement`` with Status
"accepted" naming the message is the only success; a SOAP Fault, another status or an unreadable
answer is a negative acknowledgement; a transport error or timeout raises, and the delivery stage
retries either way. (Until December 2026 zeep's binding also re-parsed the envelope and read the
answer through the WSDL's types: a third of a delivery's CPU for the same outcome.)
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import zeep

from connectors.base import Acknowledgement, Outbound
from gateway.errors import GatewayError
from gateway.xmlparse import parse_untrusted

log = logging.getLogger(__name__)


_SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
_GW = "urn:gradex:gateway:1"
_ACK = f"{{{_SOAP_ENV}}}Body/{{{_GW}}}DeliveryAcknowledgement"
_FAULT = f"{{{_SOAP_ENV}}}Body/{{{_SOAP_ENV}}}Fault"
# requests reads the environment on every request when it trusts it (proxies and their exceptions,
# the CA bundle, netrc): about a third of a small request's CPU. The CA bundle is read once here;
# the environment is trusted per request only when proxies (or netrc) are configured.
_PER_REQUEST = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "NETRC")


def _trusts_environment() -> bool:
    return any(name in os.environ or name.lower() in os.environ for name in _PER_REQUEST)


def _ca_bundle() -> str | bool:
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True


class ZeepPushConnector:
    def __init__(self, recipient_wsdl: Path) -> None:
        self._wsdl = recipient_wsdl  # the contract the answers are read by (DeliveryAcknowledgement)
        self._transports: dict[float, zeep.Transport] = {}
        self._lock = threading.Lock()
        self._trust_env = _trusts_environment()

    def _transport(self, timeout: float) -> zeep.Transport:
        # One transport (a requests session, its connection pool) per timeout: zeep fixes the timeout in it.
        with self._lock:
            transport = self._transports.get(timeout)
            if transport is None:
                transport = zeep.Transport(timeout=timeout, operation_timeout=timeout)
                if not self._trust_env:
                    transport.session.trust_env = False
                    transport.session.verify = _ca_bundle()
                self._transports[timeout] = transport
            return transport

    def deliver(self, outbound: Outbound) -> Acknowledgement:
        """Post ``outbound.envelope``; raises on transport errors (connection refused, timeout).

        The envelope goes as it was built (zeep's transport posts the bytes; nothing is parsed
        again), and the answer is read with the gateway's hardened parser: a ``soapenv:Fault`` or
        a ``gw:DeliveryAcknowledgement`` (recipient-1.wsdl's output), anything else is unreadable.
        """
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"urn:gradex:recipient:1#Deliver"'}
        response = self._transport(outbound.timeout_seconds).post(outbound.endpoint_url, outbound.envelope, headers)
        try:
            root = parse_untrusted(response.content).getroot()
        except GatewayError as exc:  # not XML, or XML the intake would refuse (DTD, entities, limits)
            return Acknowledgement(False, f"HTTP {response.status_code}: unreadable answer ({exc})")
        fault = root.find(_FAULT)
        if fault is not None:
            text = (fault.findtext("faultstring") or "").strip()
            return Acknowledgement(False, f"SOAP fault from the recipient: {text}")
        answer = root.find(_ACK)
        if answer is None:
            return Acknowledgement(
                False, f"HTTP {response.status_code}: unreadable answer (no DeliveryAcknowledgement)"
            )
        status = (answer.findtext(f"{{{_GW}}}Status") or "").strip()
        acknowledged = (answer.findtext(f"{{{_GW}}}MessageId") or "").strip()
        if response.status_code == 200 and status == "accepted" and acknowledged == outbound.message_id:
            return Acknowledgement(True, "accepted")
        if status == "accepted" and acknowledged != outbound.message_id:
            why = (
                f"the recipient acknowledged message {acknowledged!r}, not {outbound.message_id!r}: "
                "an acknowledgement counts only for the message it names"
            )
            log.warning("acknowledgement from %s not counted: %s", outbound.recipient_id, why)
            return Acknowledgement(False, f"HTTP {response.status_code}: {why}")
        detail = (answer.findtext(f"{{{_GW}}}Detail") or "").strip()
        return Acknowledgement(False, f"HTTP {response.status_code}, status {status!r}: {detail}")
