"""The signed receipt every accepted message earns (non-repudiation of receipt, after AS4).

It names the message, when it was accepted, the sender's certificate and signature, and the digest
of every part the sender signed (copies of the sender's verified ``ds:Reference`` elements, as
AS4's ``MessagePartNRInformation``), and it is signed by the gateway. ``LogPosition`` is the audit
log's leaf index and leaf hash of the acceptance's entry.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime

from lxml import etree
from lxml.builder import ElementMaker
from sqlalchemy.orm import Session

from gateway.audit.log import LogPosition, sequence
from gateway.intake.catalog import GATEWAY_NS
from gateway.intake.pipeline import Inbound
from gateway.security.signer import GatewaySigner
from gateway.security.wsse import SignedReference

_GW = ElementMaker(namespace=GATEWAY_NS, nsmap={"gw": GATEWAY_NS})


@dataclass(frozen=True)
class ReceiptFacts:
    message_id: str
    sender_id: str
    recipient_id: str
    service_name: str
    service_version: str
    status: str
    received_at: datetime
    certificate_sha256: str
    signature_sha256: str
    references: tuple[SignedReference, ...]
    log_position: LogPosition | None = None


def build_receipt(facts: ReceiptFacts, signer: GatewaySigner) -> etree._Element:
    """The gateway-signed ``gw:Receipt`` for ``facts``."""
    parts = _GW.SignedParts()
    for reference in facts.references:
        part = _GW.Part(name=reference.part)
        part.append(copy.deepcopy(reference.reference))
        parts.append(part)
    receipt: etree._Element = _GW.Receipt(
        _GW.MessageId(facts.message_id),
        _GW.Sender(facts.sender_id),
        _GW.Recipient(facts.recipient_id),
        _GW.Service(_GW.Name(facts.service_name), _GW.Version(facts.service_version)),
        _GW.Status(facts.status),
        _GW.ReceivedAt(facts.received_at.isoformat().replace("+00:00", "Z")),
        _GW.SenderCertificateSha256(facts.certificate_sha256),
        _GW.SenderSignatureSha256(facts.signature_sha256),
        parts,
        Id=f"receipt-{facts.message_id}",
    )
    if facts.log_position is not None:
        receipt.append(
            _GW.LogPosition(
                _GW.LeafIndex(str(facts.log_position.leaf_index)), _GW.LeafHash(facts.log_position.leaf_hash.hex())
            )
        )
    return signer.sign_enveloped(receipt)


@dataclass(frozen=True)
class IssueReceipt:
    """Sign the receipt of a business document and keep it with the stored message."""

    signer: GatewaySigner

    def __call__(self, inbound: Inbound, session: Session) -> None:
        stored, security, service = inbound.stored, inbound.security, inbound.service
        assert stored is not None and security is not None and service is not None
        if service.is_plumbing:
            return  # answered by the plumbing stage, which is all the sender needs
        # The transaction's audit entries get their indexes now (the receipt names the acceptance's);
        # the counter row stays locked from here to the commit, so nothing slow may follow.
        sequence(session)
        assert inbound.acceptance is not None and inbound.acceptance.position is not None
        facts = ReceiptFacts(
            message_id=stored.message_id,
            sender_id=stored.sender_id,
            recipient_id=stored.recipient_id,
            service_name=service.name,
            service_version=service.version,
            status="accepted",  # the receipt acknowledges acceptance; delivery has its own status
            received_at=stored.received_at,
            certificate_sha256=security.certificate_sha256,
            signature_sha256=security.signature_sha256,
            references=security.references,
            log_position=inbound.acceptance.position,
        )
        receipt = build_receipt(facts, self.signer)
        stored.receipt = etree.tostring(receipt)
        inbound.receipt = receipt
