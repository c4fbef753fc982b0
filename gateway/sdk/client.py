"""A few lines for an agency to send a signed document and hold the gateway's receipt.

    client = GatewayClient.from_keys("http://127.0.0.1:8080", "12110108400000008J", Path("keys"))
    sent = client.send(Path("examples/destination-registration.xml").read_bytes(), recipient="11110000000000001R")
    print(sent.receipt.status, sent.receipt.received_at)

A graduate verification request is answered at once: ``sent.verification`` holds the facts the
graduate granted, from the gateway-signed response (verified like the receipt).

and to work its own pull mailbox and follow what it sent:

    fetched = client.fetch(10)                 # verified gw:Delivery facts, oldest first
    for delivery in fetched:
        handle(delivery.original)              # the sender's signed envelope
    client.acknowledge(fetched)                # each one: acknowledged, already_acknowledged, unknown
    client.status(sent.message_id).deliveries  # status, attempts, last error, timestamps
    client.delivery_receipt(sent.message_id)   # the gateway-signed receipt, once delivered

Built on zeep: the WSDL is loaded with zeep, the document is read into zeep's objects for the
operation the gateway publishes and serialised by zeep, signed by the :class:`GatewaySignature`
plugin, sent through zeep's transport; the receipt is verified against the trust anchors and
against the digests of what was sent.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import zeep
from cryptography import x509
from lxml import etree

from gateway.errors import GatewayError
from gateway.intake.catalog import GATEWAY_NS, SOAP_ENV_NS
from gateway.pki.keystore import PrivateKey, load_private_key
from gateway.sdk.mailbox import (
    ANSWERS,
    AcknowledgementResult,
    MessageStatusReport,
    VerifiedDeliveryReceipt,
    read_acknowledgements,
    read_fetched,
    read_status,
    verify_delivery_receipt,
)
from gateway.sdk.receipts import VerifiedReceipt, sent_digests, verify_receipt, verify_signed_response
from gateway.sdk.recipient import VerifiedDelivery
from gateway.sdk.verification import ANSWER, VerifiedVerification, read_answer
from gateway.sdk.zeep_plugins import GatewaySignature
from gateway.xmlparse import XmlLimits, parse_untrusted


class NotAGatewayDocument(ValueError):
    """The document given to :meth:`GatewayClient.send` is not one the gateway's WSDL takes."""


class GatewayRefusal(GatewayError):
    """The gateway answered with a SOAP Fault; ``code`` is its stable fault code."""

    def __init__(self, code: str, message: str, http_status: int) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.http_status = http_status


@dataclass(frozen=True)
class SentMessage:
    message_id: str
    receipt: VerifiedReceipt
    verification: VerifiedVerification | None = None  # the answer to a GraduateVerificationRequest


# Services the gateway answers itself (with the receipt inside its answer), by their answer element.
ANSWERED = {"GraduateVerificationRequest": ANSWER}


class GatewayClient:
    def __init__(
        self,
        base_url: str,
        participant_id: str,
        key: PrivateKey,
        certificate: x509.Certificate,
        anchor_files: tuple[Path, ...],
        timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.participant_id = participant_id
        self.anchor_files = anchor_files
        self._plugin = GatewaySignature(key, certificate)
        self._timeout = timeout

    @classmethod
    def from_keys(
        cls, base_url: str, participant_id: str, keys_dir: Path, passphrase: bytes | None = None
    ) -> GatewayClient:
        """A client with the participant's key and certificate from a gateway ``keys/`` folder (development)."""
        folder = keys_dir / "participants" / participant_id
        key = load_private_key(folder / "key.pem", passphrase)
        certificate = x509.load_pem_x509_certificate((folder / "cert.pem").read_bytes())
        return cls(base_url, participant_id, key, certificate, (keys_dir / "ca" / "ca.cert.pem",))

    @cached_property
    def zeep(self) -> zeep.Client:
        transport = zeep.Transport(timeout=self._timeout, operation_timeout=self._timeout)
        return zeep.Client(f"{self.base_url}/soap?wsdl", wsse=self._plugin, transport=transport)

    def send(
        self,
        document: bytes,
        *,
        service: str | None = None,
        recipient: str | None = None,
        role: str | None = None,
        region: str | None = None,
        message_id: str | None = None,
        correlation_id: str | None = None,
    ) -> SentMessage:
        """Sign and send ``document``; returns the verified receipt (and a verification's verified answer).

        Raises :class:`GatewayRefusal` with the fault code on refusal, and
        :class:`~gateway.sdk.receipts.ReceiptInvalid` when the receipt (or the answer) does not verify.
        """
        root = parse_untrusted(document).getroot()
        operation = service or etree.QName(root).localname
        message_id = message_id or str(uuid.uuid4())
        parsed = self._read_document(root)
        if operation not in self.operations:
            raise NotAGatewayDocument(f"the gateway's WSDL has no service {operation!r}")
        routing = self._routing(operation, message_id, recipient, role, region, correlation_id)
        try:
            envelope = self.zeep.create_message(
                self.zeep.service, operation, **{name: parsed[name] for name in parsed}, _soapheaders=[routing]
            )
        except (zeep.exceptions.Error, TypeError) as exc:
            raise NotAGatewayDocument(f"the document does not fit the service {operation}: {exc}") from None
        digests = sent_digests(envelope)
        if operation in ANSWERED:
            answer = self._post(envelope, ANSWERED[operation])
            receipt, facts = read_answer(answer, self.anchor_files, message_id, self.participant_id, digests)
            return SentMessage(message_id, receipt, facts)
        receipt_element = self._post(envelope, f"{{{GATEWAY_NS}}}Receipt")
        return SentMessage(message_id, verify_receipt(receipt_element, self.anchor_files, digests))

    @cached_property
    def operations(self) -> frozenset[str]:
        """The services (operations) of the gateway's WSDL."""
        return frozenset(self.zeep.service._binding._operations)

    def _read_document(self, root: etree._Element) -> Any:
        """``root`` read into zeep's objects, or :class:`NotAGatewayDocument` saying why it is not one."""
        if root.tag == f"{{{SOAP_ENV_NS}}}Envelope":
            raise NotAGatewayDocument(
                "this is a SOAP envelope; give the business document it carries (the Body's child element, "
                "like examples/destination-registration.xml): the client wraps and signs it itself"
            )
        try:
            element = self.zeep.get_element(root.tag)
        except zeep.exceptions.Error:
            name = etree.QName(root)
            raise NotAGatewayDocument(
                f"<{name.localname}> in namespace {name.namespace or '(none)'} is no document of the gateway's "
                "WSDL (examples/ holds a document of each service)"
            ) from None
        try:
            return element.parse(root, self.zeep.wsdl.types)
        except (zeep.exceptions.Error, ValueError, TypeError) as exc:
            raise NotAGatewayDocument(f"the document does not fit its schema: {exc}") from None

    # --- the plumbing: the own mailbox, and what became of what was sent ------------------------

    def fetch(self, max_messages: int = 10) -> list[VerifiedDelivery]:
        """Fetch up to ``max_messages`` (1-100) messages from this participant's pull mailbox, oldest first.

        Each one's gateway signature is verified (:class:`~gateway.sdk.receipts.ReceiptInvalid`
        otherwise); ``original`` is the sender's signed envelope. A message not acknowledged is
        offered again after the gateway's visibility timeout (300 s by default), so handle each one
        idempotently by ``(sender, message_id)``.
        """
        answer = self._plumbing("FetchMessages", MaxMessages=max_messages)
        return read_fetched(answer, self.participant_id, self.anchor_files)

    def acknowledge(self, deliveries: Iterable[VerifiedDelivery | tuple[str, str]]) -> list[AcknowledgementResult]:
        """Acknowledge fetched messages (deliveries, or ``(message_id, sender)`` pairs); one result each.

        A message is never offered again once acknowledged. Acknowledging twice is harmless
        (``already_acknowledged``); a message not fetched or not in this mailbox is ``unknown``.
        """
        refs = [(d.message_id, d.sender) if isinstance(d, VerifiedDelivery) else d for d in deliveries]
        if not refs:
            return []
        answer = self._plumbing(
            "AcknowledgeMessages", Message=[{"MessageId": message_id, "Sender": sender} for message_id, sender in refs]
        )
        return read_acknowledgements(answer)

    def status(self, message_id: str) -> MessageStatusReport:
        """Where each delivery of ``message_id`` (sent by this participant) stands.

        Raises :class:`GatewayRefusal` ``MESSAGE_UNKNOWN`` for a message this participant did not send.
        """
        return read_status(self._plumbing("MessageStatus", MessageId=message_id))

    def delivery_receipt(self, message_id: str) -> VerifiedDeliveryReceipt:
        """The gateway-signed receipt that ``message_id`` reached every recipient, verified.

        Raises :class:`GatewayRefusal` ``NOT_YET_DELIVERED`` (naming the current status) before
        then, and :class:`~gateway.sdk.receipts.ReceiptInvalid` when the receipt does not verify.
        """
        receipt = self._plumbing("DeliveryReceiptRequest", MessageId=message_id)
        return verify_delivery_receipt(receipt, self.anchor_files, message_id, self.participant_id)

    def _plumbing(self, operation: str, **fields: Any) -> etree._Element:
        """Send a plumbing request to this participant's own mailbox; returns the answer element."""
        routing = self._routing(operation, str(uuid.uuid4()), self.participant_id, None, None, None)
        envelope = self.zeep.create_message(self.zeep.service, operation, **fields, _soapheaders=[routing])
        return self._post(envelope, ANSWERS[operation])

    def _post(self, envelope: etree._Element, expected: str) -> etree._Element:
        """Post a signed envelope; returns the Body's ``expected`` element or raises :class:`GatewayRefusal`."""
        address = self.zeep.service._binding_options["address"]
        response = self.zeep.transport.post_xml(address, envelope, {"Content-Type": "text/xml; charset=utf-8"})
        # A mailbox answer holds up to 100 accepted messages: the intake's limits are per message.
        answer = parse_untrusted(response.content, XmlLimits.widest()).getroot()
        verify_signed_response(answer, self.anchor_files)  # answers and faults alike
        fault = answer.find(f"{{{SOAP_ENV_NS}}}Body/{{{SOAP_ENV_NS}}}Fault")
        if fault is not None:
            code = fault.findtext(f"detail/{{{GATEWAY_NS}}}FaultDetail/{{{GATEWAY_NS}}}Code") or "UNKNOWN"
            text = fault.findtext(f"detail/{{{GATEWAY_NS}}}FaultDetail/{{{GATEWAY_NS}}}Message") or ""
            raise GatewayRefusal(code, text, response.status_code)
        found = answer.find(f"{{{SOAP_ENV_NS}}}Body/{expected}")
        if found is None:
            name = etree.QName(expected).localname
            code = "NO_RECEIPT" if name == "Receipt" else "NO_ANSWER"
            raise GatewayRefusal(code, f"HTTP {response.status_code} without a {name}", response.status_code)
        return found

    def _routing(
        self,
        service: str,
        message_id: str,
        recipient: str | None,
        role: str | None,
        region: str | None,
        correlation_id: str | None,
    ) -> Any:
        if (recipient is None) == (role is None or region is None):
            raise ValueError("name either a recipient participant or a role and a region")
        target = {"Participant": recipient} if recipient else {"Role": role, "Region": region}
        fields: dict[str, Any] = {
            "MessageId": message_id,
            "Sender": self.participant_id,
            "Recipient": target,
            "Service": {"Name": service, "Version": "1"},
            "CreatedAt": datetime.now(UTC),
        }
        if correlation_id:
            fields["CorrelationId"] = correlation_id
        return self.zeep.get_element(f"{{{GATEWAY_NS}}}Routing")(**fields)
