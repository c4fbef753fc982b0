"""A few lines for an agency to send a signed document and hold the gateway's receipt.

    client = GatewayClient.from_keys("http://127.0.0.1:8080", "12110108400000008J", Path("keys"))
    sent = client.send(Path("examples/destination-registration.xml").read_bytes(), recipient="11110000000000001R")
    print(sent.receipt.status, sent.receipt.received_at)

Built on zeep: the WSDL is loaded with zeep, the document is read into zeep's objects for the
operation the gateway publishes and serialised by zeep, signed by the :class:`GatewaySignature`
plugin, sent through zeep's transport; the receipt is verified against the trust anchors and
against the digests of what was sent.
"""

from __future__ import annotations

import uuid
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
from gateway.sdk.receipts import VerifiedReceipt, sent_digests, verify_receipt
from gateway.sdk.zeep_plugins import GatewaySignature
from gateway.xmlparse import parse_untrusted


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
        """Sign and send ``document``; returns the verified receipt.

        Raises :class:`GatewayRefusal` with the fault code on refusal, and
        :class:`~gateway.sdk.receipts.ReceiptInvalid` when the receipt does not verify.
        """
        root = parse_untrusted(document).getroot()
        operation = service or etree.QName(root).localname
        message_id = message_id or str(uuid.uuid4())
        parsed = self.zeep.get_element(root.tag).parse(root, self.zeep.wsdl.types)
        envelope = self.zeep.create_message(
            self.zeep.service,
            operation,
            **{name: parsed[name] for name in parsed},
            _soapheaders=[self._routing(operation, message_id, recipient, role, region, correlation_id)],
        )
        digests = sent_digests(envelope)
        address = self.zeep.service._binding_options["address"]
        response = self.zeep.transport.post_xml(address, envelope, {"Content-Type": "text/xml; charset=utf-8"})
        answer = parse_untrusted(response.content).getroot()
        fault = answer.find(f"{{{SOAP_ENV_NS}}}Body/{{{SOAP_ENV_NS}}}Fault")
        if fault is not None:
            code = fault.findtext(f"detail/{{{GATEWAY_NS}}}FaultDetail/{{{GATEWAY_NS}}}Code") or "UNKNOWN"
            text = fault.findtext(f"detail/{{{GATEWAY_NS}}}FaultDetail/{{{GATEWAY_NS}}}Message") or ""
            raise GatewayRefusal(code, text, response.status_code)
        receipt = answer.find(f"{{{SOAP_ENV_NS}}}Body/{{{GATEWAY_NS}}}Receipt")
        if receipt is None:
            raise GatewayRefusal("NO_RECEIPT", f"HTTP {response.status_code} without a receipt", response.status_code)
        return SentMessage(message_id, verify_receipt(receipt, self.anchor_files, digests))

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
