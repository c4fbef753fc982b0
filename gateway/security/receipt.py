"""The signed receipt every accepted message earns (non-repudiation of receipt, after AS4).

It names the message, when it was accepted, the sender's certificate and signature, and the digest
of every part the sender signed (copies of the sender's verified ``ds:Reference`` elements, as
AS4's ``MessagePartNRInformation``), and it is signed by the gateway. ``LogPosition`` is the audit
log's leaf index and leaf hash of the acceptance's entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from lxml import etree
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
from gateway.security.signer import GatewaySigner, canonical_attribute, canonical_text
from gateway.security.wsse import SignedReference, read_security_header
from gateway.store.deferred import write


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


def signed_parts(references: tuple[SignedReference, ...]) -> str:
    """The receipt's ``gw:Part`` elements, in exclusive canonical form: a copy of each of the
    sender's verified references, canonicalised on its own (they use no namespace of the receipt's).

    The lxml part of a receipt (``build_receipt``): the intake writes it in the request's thread
    (``IssueReceipt.prepare``), since lxml lets go of the interpreter lock while it serialises, and
    a thread that must win it back from the busy request threads waits (bench/intake/README.md,
    fifth pass); the rest of the receipt is string work and one signature.
    """
    return "".join(
        f'<gw:Part name="{canonical_attribute(reference.part)}">'
        f"{etree.tostring(reference.reference, method='c14n', exclusive=True).decode()}</gw:Part>"
        for reference in references
    )


def build_receipt(facts: ReceiptFacts, signer: GatewaySigner, parts: str | None = None) -> bytes:
    """The gateway-signed ``gw:Receipt`` for ``facts``, serialised in exclusive canonical form (UTF-8).

    Written as text in its canonical form and signed so (``GatewaySigner.sign_canonical``) rather
    than built as a tree, copied, canonicalised and serialised: every accepted message earns one,
    and the tree took about a tenth of the intake's CPU. The sender's references are each
    canonicalised on their own, which is how the receipt's canonical form renders them (they use no
    namespace of the receipt's). Being canonical, the receipt goes into the signed SOAP response as
    it is (``ResponseSigner.envelope``). ``tests/security/test_receipt.py`` checks that lxml's
    exclusive C14N of the parsed receipt is the receipt itself. ``parts``: ``signed_parts`` of
    ``facts.references``, if the caller wrote them already.
    """
    if parts is None:
        parts = signed_parts(facts.references)
    position = ""
    if facts.log_position is not None:
        position = (
            f"<gw:LogPosition><gw:LeafIndex>{facts.log_position.leaf_index}</gw:LeafIndex>"
            f"<gw:LeafHash>{facts.log_position.leaf_hash.hex()}</gw:LeafHash></gw:LogPosition>"
        )
    fields = (
        ("MessageId", facts.message_id),
        ("Sender", facts.sender_id),
        ("Recipient", facts.recipient_id),
    )
    content = (
        "".join(f"<gw:{name}>{canonical_text(value)}</gw:{name}>" for name, value in fields)
        + f"<gw:Service><gw:Name>{canonical_text(facts.service_name)}</gw:Name>"
        f"<gw:Version>{canonical_text(facts.service_version)}</gw:Version></gw:Service>"
        f"<gw:Status>{canonical_text(facts.status)}</gw:Status>"
        f"<gw:ReceivedAt>{facts.received_at.isoformat().replace('+00:00', 'Z')}</gw:ReceivedAt>"
        f"<gw:SenderCertificateSha256>{canonical_text(facts.certificate_sha256)}</gw:SenderCertificateSha256>"
        f"<gw:SenderSignatureSha256>{canonical_text(facts.signature_sha256)}</gw:SenderSignatureSha256>"
        f"<gw:SignedParts>{parts}</gw:SignedParts>{position}"
    )
    element_id = f"receipt-{facts.message_id}"
    start = f'<gw:Receipt xmlns:gw="{GATEWAY_NS}" Id="{canonical_attribute(element_id)}">'
    return signer.sign_canonical(start, content, "</gw:Receipt>", element_id)


_MESSAGES = cast(Table, Message.__table__)
_KEEP = update(_MESSAGES).where(_MESSAGES.c.id == bindparam("pk")).values(receipt=bindparam("receipt"))


@dataclass(frozen=True)
class IssueReceipt:
    """Sign the receipt of an accepted message (``sign``: CPU only) and keep it with the stored message
    (``keep``: one UPDATE). The intake does both in the message's own batch, once its acceptance has
    its leaf index, or, when indexes are given after the commit (PostgreSQL's deferred indexes),
    after the commit and in the group commit's next batch (``gateway.intake.pipeline.Pipeline``).

    ``payloads`` opens a stored envelope when a receipt that was never kept is signed anew.
    """

    signer: GatewaySigner
    payloads: PayloadCipher

    def prepare(self, inbound: Inbound) -> None:
        """Before the transaction, in the request's thread: the receipt's part that needs no log
        position (``signed_parts``), into ``inbound.receipt_parts``."""
        assert inbound.security is not None
        inbound.receipt_parts = signed_parts(inbound.security.references)

    def sign(self, inbound: Inbound) -> None:
        """Sign the receipt of ``inbound`` (committed, its acceptance indexed) into ``inbound.receipt_bytes``."""
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
        # Text, not a tree serialised: in the writer's thread, lxml's serialising cost about 0.3 ms a
        # receipt, since lxml lets go of the interpreter lock and winning it back waited for the busy
        # request threads; the one lxml part, the sender's references, was written by ``prepare``.
        inbound.receipt_bytes = build_receipt(facts, self.signer, inbound.receipt_parts)

    def keep(self, inbound: Inbound, session: Session) -> None:
        """Keep the signed receipt with the stored message (one UPDATE; in the group commit, one for
        the batch's receipts, at its commit: ``gateway.store.deferred``)."""
        assert inbound.stored is not None and inbound.receipt_bytes is not None
        write(session, _KEEP, {"pk": inbound.stored.id, "receipt": inbound.receipt_bytes})

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
        receipt = build_receipt(facts, self.signer)
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
