"""zeep WS-Security plugins for agencies on Python.

- :class:`GatewaySignature` signs Body, Timestamp and routing header the way the gateway wants
  (signxml; RSA-SHA256 or ECDSA-SHA256, SHA-256, exclusive C14N) and checks the gateway's
  WS-Security signature on the whole answer, its signed receipt (and the signed response of a
  verification answer).
- :class:`RoutingTimestamp` is for zeep's own ``zeep.wsse.signature.Signature`` and
  ``BinarySignature``, which sign only the Body and a Timestamp already in the header: it adds that
  Timestamp with a ``gw:RoutingDigest`` binding the routing header. Compose it first:
  ``Compose([RoutingTimestamp(), BinarySignature(key, cert, signature_method=RSA_SHA256, digest_method=SHA256)])``.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from lxml import etree

from gateway.intake.catalog import GATEWAY_NS, SOAP_ENV_NS
from gateway.intake.envelope import BODY, HEADER, ROUTING
from gateway.pki.keystore import PrivateKey
from gateway.sdk.receipts import ReceiptInvalid, verify_gateway_signed, verify_receipt, verify_signed_response
from gateway.sdk.signing import KeyInfoStyle, _instant, _new_id, sign_envelope
from gateway.sdk.verification import ANSWER, RESPONSE
from gateway.security.wsse import ROUTING_DIGEST, SECURITY, SHA256_URI, WSSE_NS, WSU_ID, WSU_NS, routing_digest


class GatewaySignature:
    """Sign requests; verify the gateway's receipt in responses when ``anchor_files`` are given."""

    def __init__(
        self,
        key: PrivateKey,
        certificate: x509.Certificate,
        anchor_files: tuple[Path, ...] = (),
        key_info: KeyInfoStyle = "binary-token",
    ) -> None:
        self.key = key
        self.certificate = certificate
        self.anchor_files = anchor_files
        self.key_info: KeyInfoStyle = key_info

    def apply(self, envelope: etree._Element, headers: dict[str, Any]) -> tuple[etree._Element, dict[str, Any]]:
        sign_envelope(envelope, self.key, self.certificate, key_info=self.key_info)
        return envelope, headers

    def verify(self, envelope: etree._Element) -> etree._Element:
        if not self.anchor_files:
            return envelope
        verify_signed_response(envelope, self.anchor_files)
        receipt = envelope.find(f"{BODY}/{{{GATEWAY_NS}}}Receipt")
        if receipt is not None:
            verify_receipt(receipt, self.anchor_files)
        answer = envelope.find(f"{BODY}/{ANSWER}")
        if answer is not None:  # each signed part on its own copy
            receipt, response = answer.find(f"{{{GATEWAY_NS}}}Receipt"), answer.find(RESPONSE)
            if receipt is None or response is None:
                raise ReceiptInvalid("the verification answer lacks the response or the receipt")
            verify_receipt(copy.deepcopy(receipt), self.anchor_files)
            verify_gateway_signed(copy.deepcopy(response), RESPONSE, self.anchor_files)
        return envelope


class RoutingTimestamp:
    """Add a wsu:Timestamp that binds the routing header, for zeep's own signature plugins."""

    def __init__(self, ttl: timedelta = timedelta(minutes=5)) -> None:
        self.ttl = ttl

    def apply(self, envelope: etree._Element, headers: dict[str, Any]) -> tuple[etree._Element, dict[str, Any]]:
        header = envelope.find(HEADER)
        routing = header.find(ROUTING) if header is not None else None
        if header is None or routing is None:
            raise ValueError("RoutingTimestamp needs the gw:Routing header (pass it in _soapheaders)")
        security = header.find(SECURITY)
        if security is None:
            security = etree.Element(SECURITY, nsmap={"wsse": WSSE_NS, "wsu": WSU_NS})
            security.set(f"{{{SOAP_ENV_NS}}}mustUnderstand", "1")
            header.insert(0, security)
        now = datetime.now(UTC)
        timestamp = etree.SubElement(security, f"{{{WSU_NS}}}Timestamp", {WSU_ID: _new_id("TS")})
        etree.SubElement(timestamp, f"{{{WSU_NS}}}Created").text = _instant(now)
        etree.SubElement(timestamp, f"{{{WSU_NS}}}Expires").text = _instant(now + self.ttl)
        binding = etree.SubElement(timestamp, ROUTING_DIGEST, Algorithm=SHA256_URI, nsmap={"gw": GATEWAY_NS})
        binding.text = routing_digest(routing)
        return envelope, headers

    def verify(self, envelope: etree._Element) -> etree._Element:
        return envelope
