"""A message's whole story: what was accepted, its deliveries and attempts, its receipt, its log entries.

Everything comes from the store and the audit log; the signed original is shown only as metadata
(size and digests): its contents are personal data, and (branch ``payloads``) sealed at rest.
A verification request's story also holds the uses of the graduate's grant it made (or the
refused attempts under its id); the evidence bundle is exported from the page (``views``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from lxml import etree
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, selectinload

from gateway.audit.entries import Value, decode
from gateway.audit.log import size as log_size
from gateway.audit.models import AuditCheckpoint, AuditEntry
from gateway.graduates.models import MessageSubject
from gateway.grants.models import GrantUse
from gateway.intake.catalog import GATEWAY_NS
from gateway.messages.models import Delivery, DeliveryStatus, Message
from gateway.registry.models import Participant, ParticipantCertificate
from gateway.xmlparse import parse_untrusted

DS_NS = "http://www.w3.org/2000/09/xmldsig#"
NS = {"gw": GATEWAY_NS, "ds": DS_NS}


@dataclass(frozen=True)
class LoggedEntry:
    """One audit entry about the message, with where it sits in the log."""

    leaf_index: int
    at: datetime
    kind: str
    leaf_hash: str  # hex
    facts: dict[str, Value]
    integrated: bool
    checkpoint_size: int | None  # the first signed checkpoint that covers it
    checkpoint_at: datetime | None

    @property
    def recipient(self) -> str | None:
        value = self.facts.get("recipient")
        return value if isinstance(value, str) else None

    @property
    def shown_facts(self) -> list[tuple[str, Value]]:
        """The facts beyond those every entry has (``v``, ``kind``, ``at``)."""
        return [(k, v) for k, v in sorted(self.facts.items()) if k not in ("v", "kind", "at")]


@dataclass(frozen=True)
class SignedPart:
    name: str
    uri: str
    digest_method: str
    digest_value: str


@dataclass(frozen=True)
class ReceiptFacts:
    """What the gateway's signed receipt of acceptance says, read back from the stored copy."""

    status: str
    received_at: str
    parts: list[SignedPart]
    leaf_index: str | None
    leaf_hash: str | None
    size: int
    sha256: str


@dataclass(frozen=True)
class Story:
    message: Message
    names: dict[str, str]  # participant id -> name
    deliveries: list[Delivery]
    entries: list[LoggedEntry]
    receipt: ReceiptFacts | None
    about_graduate: bool
    certificate: ParticipantCertificate | None  # the registered certificate the sender signed with
    grant_uses: list[GrantUse]  # uses of a graduate's grant this message made, or refused attempts under its id

    @property
    def delivery_receipt_available(self) -> bool:
        """A signed delivery receipt is issued on the sender's request once every delivery is delivered."""
        return bool(self.deliveries) and all(d.status == DeliveryStatus.DELIVERED for d in self.deliveries)

    def attempts(self, recipient: str) -> list[LoggedEntry]:
        """The logged delivery outcomes for ``recipient`` (each failed attempt, dead letter, delivery)."""
        return [e for e in self.entries if e.kind.startswith("delivery.") and e.recipient == recipient]


def load_story(session: Session, message_pk: int) -> Story | None:
    """The story of the stored message ``message_pk``, or None when there is none."""
    message = session.scalar(select(Message).where(Message.id == message_pk).options(selectinload(Message.deliveries)))
    if message is None:
        return None
    deliveries = sorted(message.deliveries, key=lambda d: d.id)
    ids = {message.sender_id, message.recipient_id, *(d.recipient_id for d in deliveries)}
    names = dict(session.execute(select(Participant.id, Participant.name).where(Participant.id.in_(ids))).all())
    about = session.scalar(select(MessageSubject.message_pk).where(MessageSubject.message_pk == message.id))
    certificate = (
        session.scalar(
            select(ParticipantCertificate).where(
                ParticipantCertificate.fingerprint_sha256 == message.certificate_sha256
            )
        )
        if message.certificate_sha256
        else None
    )
    return Story(
        message=message,
        names=names,
        deliveries=deliveries,
        entries=_entries(session, message, {message.recipient_id, *(d.recipient_id for d in deliveries)}),
        receipt=read_receipt(message.receipt) if message.receipt else None,
        about_graduate=about is not None,
        certificate=certificate,
        grant_uses=list(
            session.scalars(
                select(GrantUse)
                .where(
                    or_(
                        GrantUse.message_pk == message.id,
                        and_(GrantUse.message_id == message.message_id, GrantUse.verifier_id == message.sender_id),
                    )
                )
                .order_by(GrantUse.id)
            )
        ),
    )


def _entries(session: Session, message: Message, recipients: set[str]) -> list[LoggedEntry]:
    """The entries logged under the message's id that do not name another sender or recipient.

    Message ids are unique per sender only: an entry of another sender's message with the same id
    (or a refused attempt to reuse it) names that sender and is left out.
    """
    _, integrated = log_size(session)
    found: list[LoggedEntry] = []
    rows = session.scalars(
        select(AuditEntry).where(AuditEntry.message_id == message.message_id).order_by(AuditEntry.leaf_index)
    )
    for row in rows:
        facts = decode(row.entry)
        sender = facts.get("sender", facts.get("claimed_sender"))
        if sender is not None and sender != message.sender_id:
            continue
        recipient = facts.get("recipient")
        if recipient is not None and recipient not in recipients:
            continue
        covering = session.execute(
            select(AuditCheckpoint.size, AuditCheckpoint.at)
            .where(AuditCheckpoint.size > row.leaf_index)
            .order_by(AuditCheckpoint.size, AuditCheckpoint.id)
            .limit(1)
        ).first()
        found.append(
            LoggedEntry(
                leaf_index=row.leaf_index,
                at=row.at,
                kind=row.kind,
                leaf_hash=row.leaf_hash.hex(),
                facts=facts,
                integrated=row.leaf_index < integrated,
                checkpoint_size=covering[0] if covering else None,
                checkpoint_at=covering[1] if covering else None,
            )
        )
    return found


def read_receipt(receipt: bytes) -> ReceiptFacts:
    """The facts of a stored ``gw:Receipt`` (the gateway's own document, parsed with the hardened parser)."""
    root = parse_untrusted(receipt).getroot()
    parts = [
        _signed_part(part, reference)
        for part in root.iterfind("gw:SignedParts/gw:Part", NS)
        for reference in part.iterfind("ds:Reference", NS)
    ]
    return ReceiptFacts(
        status=root.findtext("gw:Status", namespaces=NS) or "",
        received_at=root.findtext("gw:ReceivedAt", namespaces=NS) or "",
        parts=parts,
        leaf_index=root.findtext("gw:LogPosition/gw:LeafIndex", namespaces=NS),
        leaf_hash=root.findtext("gw:LogPosition/gw:LeafHash", namespaces=NS),
        size=len(receipt),
        sha256=hashlib.sha256(receipt).hexdigest(),
    )


def _signed_part(part: etree._Element, reference: etree._Element) -> SignedPart:
    method = reference.find("ds:DigestMethod", NS)
    return SignedPart(
        name=part.get("name", ""),
        uri=reference.get("URI", ""),
        digest_method=method.get("Algorithm", "") if method is not None else "",
        digest_value=(reference.findtext("ds:DigestValue", namespaces=NS) or "").strip(),
    )
