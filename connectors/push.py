"""The push connector: hands a signed ``gw:Delivery`` to the recipient's SOAP endpoint with zeep.

The recipient implements ``schemas/recipient-1.wsdl``. zeep's transport posts the envelope (with
the recipient's own timeout) and zeep's binding reads the answer against that WSDL: a
``gw:DeliveryAcknowledgement`` with Status "accepted" is the only success; a SOAP Fault, another
status or an unreadable answer is a negative acknowledgement; a transport error or timeout raises,
and the delivery stage retries either way.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import zeep
from lxml import etree
from zeep.exceptions import Error as ZeepError
from zeep.exceptions import Fault as ZeepFault

from connectors.base import Acknowledgement, Outbound

log = logging.getLogger(__name__)
RECIPIENT_BINDING = "{urn:gradex:recipient:wsdl:1}RecipientBinding"


class ZeepPushConnector:
    def __init__(self, recipient_wsdl: Path) -> None:
        self._wsdl = recipient_wsdl
        self._clients: dict[float, zeep.Client] = {}
        self._lock = threading.Lock()

    def _client(self, timeout: float) -> zeep.Client:
        # One client per timeout: zeep fixes the timeout in its transport. The WSDL is a local file.
        with self._lock:
            client = self._clients.get(timeout)
            if client is None:
                transport = zeep.Transport(timeout=timeout, operation_timeout=timeout)
                client = zeep.Client(str(self._wsdl), transport=transport)
                self._clients[timeout] = client
            return client

    def deliver(self, outbound: Outbound) -> Acknowledgement:
        """Post ``outbound.envelope``; raises on transport errors (connection refused, timeout)."""
        client = self._client(outbound.timeout_seconds)
        binding: Any = client.wsdl.bindings[RECIPIENT_BINDING]
        operation = binding.get("Deliver")
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"urn:gradex:recipient:1#Deliver"'}
        envelope = etree.fromstring(outbound.envelope)
        response = client.transport.post_xml(outbound.endpoint_url, envelope, headers)
        try:
            answer = binding.process_reply(client, operation, response)
        except ZeepFault as fault:
            return Acknowledgement(False, f"SOAP fault from the recipient: {fault.message}")
        except ZeepError as exc:
            return Acknowledgement(False, f"HTTP {response.status_code}: unreadable answer ({exc})")
        status = getattr(answer, "Status", None)
        acknowledged = getattr(answer, "MessageId", None)
        if response.status_code == 200 and status == "accepted" and acknowledged == outbound.message_id:
            return Acknowledgement(True, "accepted")
        if status == "accepted" and acknowledged != outbound.message_id:
            why = (
                f"the recipient acknowledged message {acknowledged!r}, not {outbound.message_id!r}: "
                "an acknowledgement counts only for the message it names"
            )
            log.warning("acknowledgement from %s not counted: %s", outbound.recipient_id, why)
            return Acknowledgement(False, f"HTTP {response.status_code}: {why}")
        return Acknowledgement(
            False, f"HTTP {response.status_code}, status {status!r}: {getattr(answer, 'Detail', '')}"
        )
