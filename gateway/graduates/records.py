"""A graduate's own paperwork from the gateway's records: their destination registration and their archive.

Everything is selected by the graduate's keyed identity hash (the account's), never by a name, so
a graduate sees only their own. The registration's story (submitted, corrected, filed with its
numbers, rejected with the department's reasons) comes from the notices the domain recorded
(``gateway.notices``); the archive's from its transfers (``gateway.archives``) with their clocks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.archives.deadlines import DISPATCH_OVERDUE, RECEIPT_OVERDUE, Overdue, overdue
from gateway.archives.models import ArchiveTransfer, TransferStatus
from gateway.notices.models import Notice
from gateway.registrations.models import Registration, RegistrationStatus

REGISTRATION_EVENTS = ("registration_submitted", "registration_filed", "registration_rejected")


@dataclass(frozen=True)
class RegistrationEvent:
    """One step of a registration: ``submitted``, ``corrected``, ``filed`` or ``rejected`` (with reasons)."""

    at: datetime
    step: str
    by: str  # the participant that sent it
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class RegistrationRecord:
    registration_id: str
    status: str  # registered | filed | rejected
    university_id: str
    department_id: str
    destination_code: str
    employer_id: str | None
    employer_name: str | None
    transfer_number: str | None
    verification_number: str | None
    registered_at: datetime
    filed_at: datetime | None
    updated_at: datetime
    events: tuple[RegistrationEvent, ...]  # oldest first

    @property
    def reasons(self) -> tuple[str, ...]:
        """The department's reasons of the latest rejection (when the registration is rejected)."""
        rejections = [e for e in self.events if e.step == "rejected"]
        return rejections[-1].reasons if rejections and self.status == RegistrationStatus.REJECTED else ()


def registrations_of(session: Session, identity_hash: str) -> list[RegistrationRecord]:
    """The graduate's registrations, the latest changed first, each with its steps."""
    rows = session.scalars(
        select(Registration)
        .where(Registration.identity_hash == identity_hash)
        .order_by(Registration.updated_at.desc(), Registration.id.desc())
    ).all()
    notices = session.scalars(
        select(Notice)
        .where(Notice.identity_hash == identity_hash, Notice.kind.in_(REGISTRATION_EVENTS))
        .order_by(Notice.at, Notice.id)
    ).all()
    steps: dict[str, list[RegistrationEvent]] = {}
    for notice in notices:
        facts = json.loads(notice.facts)
        event = _registration_event(notice, facts)
        steps.setdefault(str(facts.get("registration_id")), []).append(event)
    return [
        RegistrationRecord(
            registration_id=r.registration_id,
            status=r.status,
            university_id=r.university_id,
            department_id=r.education_department_id,
            destination_code=r.destination_code,
            employer_id=r.employer_id,
            employer_name=r.employer_name,
            transfer_number=r.transfer_number,
            verification_number=r.verification_number,
            registered_at=r.registered_at,
            filed_at=r.filed_at,
            updated_at=r.updated_at,
            events=tuple(steps.get(r.registration_id, ())),
        )
        for r in rows
    ]


def _registration_event(notice: Notice, facts: dict[str, object]) -> RegistrationEvent:
    if notice.kind == "registration_submitted":
        step, by = ("corrected" if facts.get("corrected") else "submitted"), facts.get("university")
    elif notice.kind == "registration_filed":
        step, by = "filed", facts.get("department")
    else:
        step, by = "rejected", facts.get("department")
    reasons = facts.get("reasons") or []
    return RegistrationEvent(
        notice.at, step, str(by or ""), tuple(str(r) for r in reasons) if isinstance(reasons, list) else ()
    )


@dataclass(frozen=True)
class TransferRecord:
    """One transfer of the archive, as a timeline, with its clock."""

    transfer_number: str
    holder_id: str
    receiver_id: str
    status: str  # requested | dispatched | received
    requested_at: datetime | None
    dispatch_due_at: datetime | None
    dispatched_at: datetime | None
    dispatch_method: str | None
    waybill_number: str | None
    documents: int
    receipt_due_at: datetime | None
    received_at: datetime | None
    documents_missing: int
    documents_damaged: int
    overdue_what: str | None  # "dispatch" or "receipt" when late now
    overdue_days: int


@dataclass(frozen=True)
class ArchiveRecord:
    """Where the graduate's archive is: who holds it now, or between whom it travels, and its transfers."""

    holder_id: str | None  # None: the gateway has no filed registration or transfer for the graduate
    in_transit_to: str | None
    transfers: tuple[TransferRecord, ...]  # the latest first


def archive_of(session: Session, identity_hash: str, now: datetime) -> ArchiveRecord:
    """The graduate's archive now: the university holds it until a transfer is receipted."""
    transfers = session.scalars(
        select(ArchiveTransfer)
        .where(ArchiveTransfer.identity_hash == identity_hash)
        .order_by(ArchiveTransfer.id.desc())
    ).all()
    late = {o.transfer_id: o for o in overdue(transfers, now)}
    records = tuple(_transfer(t, late.get(t.id)) for t in transfers)
    received = [t for t in transfers if t.status == TransferStatus.RECEIVED]
    received.sort(key=lambda t: (t.received_at or t.updated_at, t.id), reverse=True)
    holder = received[0].receiver_id if received else _university(session, identity_hash)
    travelling = next((t for t in transfers if t.status == TransferStatus.DISPATCHED), None)
    if travelling is not None:
        holder = travelling.holder_id
    return ArchiveRecord(holder, travelling.receiver_id if travelling else None, records)


def _university(session: Session, identity_hash: str) -> str | None:
    return session.scalar(
        select(Registration.university_id)
        .where(Registration.identity_hash == identity_hash)
        .order_by((Registration.status == RegistrationStatus.FILED).desc(), Registration.updated_at.desc())
        .limit(1)
    )


def _transfer(t: ArchiveTransfer, late: Overdue | None) -> TransferRecord:
    return TransferRecord(
        transfer_number=t.transfer_number,
        holder_id=t.holder_id,
        receiver_id=t.receiver_id,
        status=t.status,
        requested_at=t.requested_at,
        dispatch_due_at=t.dispatch_due_at,
        dispatched_at=t.dispatched_at,
        dispatch_method=t.dispatch_method,
        waybill_number=t.waybill_number,
        documents=t.documents,
        receipt_due_at=t.receipt_due_at,
        received_at=t.received_at,
        documents_missing=t.documents_missing,
        documents_damaged=t.documents_damaged,
        overdue_what={DISPATCH_OVERDUE: "dispatch", RECEIPT_OVERDUE: "receipt"}[late.what] if late else None,
        overdue_days=late.days if late else 0,
    )
