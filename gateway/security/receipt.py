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
from typing import cast

from lxml import etree
from lxml.builder import ElementMaker
from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from gateway.audit.entries import decode
from gateway.audit.log import LogPosition
from gateway.audit.models import AuditEntry
from gateway.intake.catalog import GATEWAY_NS
from gateway.intake.envelope import stored_envelope
from gateway.intake.pipeline import Inbound
from gateway.messages.models import Message
from gateway.messages.payloads import PayloadCipher
from gateway.security.signer import GatewaySigner
from gateway.security.wsse import SignedReference, read_security_header

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


_MESSAGES = cast(Table, Message.__table__)
_KEEP = update(_MESSAGES).where(_MESSAGES.c.id == bindparam("pk")).values(receipt=bindparam("receipt"))


@dataclass(frozen=True)
class IssueReceipt:
    """Sign the receipt of an accepted message (``sign``: CPU only) and keep it with the stored message
    (``keep``: in the group commit's next batch), both after the message's commit.

    ``payloads`` opens a stored envelope when a receipt that was never kept is signed anew.
    """

    signer: GatewaySigner
    payloads: PayloadCipher

    def sign(self, inbound: Inbound) -> None:
        """Sign the receipt of ``inbound`` (committed, its acceptance indexed) into ``inbound.receipt``."""
        stored, security, service = inbound.stored, inbound.security, inbound.service
        assert stored is not None and security is not None and service is not None
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
        inbound.receipt = build_receipt(facts, self.signer)
        # Serialised here, in the request's thread: lxml lets go of the interpreter lock while it
        # serialises, and in ``keep`` (the writer, in the batch's transaction) winning it back cost
        # about 0.3 ms a receipt with the request threads busy.
        inbound.receipt_bytes = etree.tostring(inbound.receipt)

    def keep(self, inbound: Inbound, session: Session) -> None:
        """Keep the signed receipt with the stored message (one UPDATE)."""
        assert inbound.stored is not None and inbound.receipt_bytes is not None
        session.execute(_KEEP, {"pk": inbound.stored.id, "receipt": inbound.receipt_bytes})

    def again(self, session: Session, sender: str, message_id: str) -> bytes | None:
        """The receipt of a stored message whose receipt was never kept, signed anew and kept.

        The same facts as the first time: the stored message's, the references of the signature
        it arrived with (read from its stored envelope) and its acceptance's audit entry. None when
        its envelope is gone (purged) and the references cannot be read again.
        """
        message = session.scalars(
            select(Message).where(Message.sender_id == sender, Message.message_id == message_id)
        ).one()
        if message.receipt is not None:
            return message.receipt
        earlier = stored_envelope(self.payloads, message)
        if earlier is None:
            return None
        header = read_security_header(*earlier)
        facts = ReceiptFacts(
            message_id=message.message_id,
            sender_id=message.sender_id,
            recipient_id=message.recipient_id,
            service_name=message.service,
            service_version=message.service_version,
            status="accepted",
            received_at=message.received_at,
            certificate_sha256=message.certificate_sha256 or "",
            signature_sha256=message.signature_sha256 or "",
            references=header.references,
            log_position=_acceptance_position(session, sender, message_id),
        )
        receipt = etree.tostring(build_receipt(facts, self.signer))
        message.receipt = receipt
        return receipt


def _acceptance_position(session: Session, sender: str, message_id: str) -> LogPosition | None:
    """The leaf index and hash of the ``message.accepted`` entry of this sender's message, once sequenced."""
    rows = session.execute(
        select(AuditEntry.leaf_index, AuditEntry.leaf_hash, AuditEntry.entry).where(
            AuditEntry.message_id == message_id, AuditEntry.kind == "message.accepted"
        )
    ).all()
    for leaf_index, leaf_hash, entry in rows:
        if decode(entry).get("sender") == sender:  # message ids are unique per sender only
            return LogPosition(leaf_index, leaf_hash)
    return None
