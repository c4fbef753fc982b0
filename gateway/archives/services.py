"""Archive transfer request, manifest and receipt: the service rules that run the transfer clock.

- ``ArchiveTransferRequest`` (receiving unit -> holder) starts the holder's dispatch clock.
- ``ArchiveTransferManifest`` (holder -> receiving unit) is checked against the archive rules of
  :mod:`gateway.archives.rules`, the graduate's filed registration being the source of truth, and
  starts the receiver's receipt clock.
- ``ArchiveReceipt`` (receiving unit -> holder) closes the transfer.

The request and the manifest both need a filed registration with the transfer number they quote,
and must be addressed to (sent by) the unit that holds the archive now: the graduate's university,
or the unit that last receipted it. Identity numbers are looked up by their keyed hash only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.archives.deadlines import Limits
from gateway.archives.models import ArchiveTransfer, TransferStatus
from gateway.archives.rules import RegistrationFacts, allowed_receivers, dispatch_refusal
from gateway.codes.lists import code_list
from gateway.domain.documents import NS, flag, required, text
from gateway.domain.message import DomainMessage
from gateway.errors import ArchiveRuleViolation, RegistrationNotFiled
from gateway.notices.record import notify
from gateway.registrations.models import Registration
from gateway.registrations.rules import filed_registration
from gateway.registry.directory import SqlDirectory
from gateway.registry.models import ParticipantKind


class RegistryAgencies:
    """:class:`AgencyDirectory` over the registry: enabled talent service agencies only."""

    def __init__(self, session: Session) -> None:
        self._directory = SqlDirectory(session)

    def talent_agencies(self, region: str) -> Sequence[str]:
        found = self._directory.responsible_for(ParticipantKind.TALENT_SERVICE_AGENCY, region)
        return [p.id for p in found if p.enabled]


def registration_facts(record: Registration) -> RegistrationFacts:
    """What the archive rules need of ``record``, with its codes looked up in the code lists."""
    destination = code_list("destination-codes")[record.destination_code]
    nature = code_list("unit-nature-codes").get(record.employer_unit_nature or "")
    return RegistrationFacts(
        destination_code=record.destination_code,
        destination_parent=destination["parent"] or None,
        destination_category=destination["category"],
        household_region=record.household_region,
        archive_receiver_choice=record.archive_receiver_choice,
        archive_receiver_id=record.archive_receiver_id,
        employer_id=record.employer_id,
        employer_unit_nature=record.employer_unit_nature,
        employer_keeps_archive=nature is not None and nature["archive_to_employer"] == "yes",
        employer_region=record.employer_region,
        targeted_unit_id=record.targeted_unit_id,
        admitting_institution_id=record.admitting_institution_id,
    )


def _filed(session: Session, identity_hash: str, transfer_number: str) -> Registration:
    record = filed_registration(session, identity_hash)
    if record is None:
        raise RegistrationNotFiled("the graduate has no filed destination registration; the archive cannot move yet")
    if record.transfer_number != transfer_number:
        raise RegistrationNotFiled(
            f"transfer number {transfer_number} is not that of the graduate's current filed registration"
        )
    return record


def _current_holder(session: Session, record: Registration, identity_hash: str) -> str:
    """The university, until a transfer is receipted; then the unit that receipted the latest one."""
    latest = session.scalar(
        select(ArchiveTransfer)
        .where(ArchiveTransfer.identity_hash == identity_hash, ArchiveTransfer.status == TransferStatus.RECEIVED)
        .order_by(ArchiveTransfer.received_at.desc(), ArchiveTransfer.id.desc())
        .limit(1)
    )
    return latest.receiver_id if latest is not None else record.university_id


def _check_receiver(session: Session, record: Registration, receiver: str) -> None:
    refusal = allowed_receivers(registration_facts(record), RegistryAgencies(session)).refusal(receiver)
    if refusal is not None:
        raise ArchiveRuleViolation(refusal)


def _check_holder(session: Session, record: Registration, identity_hash: str, holder: str) -> None:
    current = _current_holder(session, record, identity_hash)
    if holder != current:
        raise ArchiveRuleViolation(f"rule holder: the graduate's archive is held by {current}, not {holder}")


def _check_receiving_unit(document_unit: str, party: str, role: str) -> None:
    if document_unit != party:
        raise ArchiveRuleViolation(
            f"rule receiving-unit: the document names {document_unit} as receiving unit, but its {role} is {party}"
        )


# --- request ------------------------------------------------------------------------------------


class ArchiveTransferRequestRules:
    def check(self, message: DomainMessage, session: Session) -> None:
        """The requesting unit is the receiving unit, may receive the archive, and asks its holder.

        Raises :class:`RegistrationNotFiled` or :class:`ArchiveRuleViolation`.
        """
        self._existing(message, session)

    def apply(self, message: DomainMessage, session: Session) -> None:
        """Start the dispatch clock, unless this graduate's archive is already requested or on its way."""
        record, identity_hash, existing = self._existing(message, session)
        if existing is not None:  # a reminder keeps the clock it started
            return
        received_at = message.received_at
        dispatch_due_at = Limits.from_settings(message.settings).dispatch_due(received_at, record.leaves_late)
        transfer_number = required(message.document, "arc:TransferNumber")
        session.add(
            ArchiveTransfer(
                identity_hash=identity_hash,
                transfer_number=transfer_number,
                request_id=required(message.document, "arc:RequestId"),
                holder_id=message.recipient.id,
                receiver_id=message.sender.id,
                leaves_late=record.leaves_late,
                status=TransferStatus.REQUESTED,
                requested_at=received_at,
                dispatch_due_at=dispatch_due_at,
                documents=0,
                documents_missing=0,
                documents_damaged=0,
                updated_at=received_at,
            )
        )
        notify(
            session,
            "archive_requested",
            received_at,
            identity_hash=identity_hash,
            message_id=message.message_id,
            facts={
                "transfer_number": transfer_number,
                "holder": message.recipient.id,
                "receiver": message.sender.id,
                "due": dispatch_due_at.isoformat(),
            },
        )

    def _existing(self, message: DomainMessage, session: Session) -> tuple[Registration, str, ArchiveTransfer | None]:
        doc = message.document
        identity_hash = message.hasher(required(doc, "arc:Graduate/arc:IdentityNumber"))
        _check_receiving_unit(required(doc, "arc:ReceivingUnit/c:CreditCode"), message.sender.id, "sender")
        record = _filed(session, identity_hash, required(doc, "arc:TransferNumber"))
        _check_holder(session, record, identity_hash, message.recipient.id)
        _check_receiver(session, record, message.sender.id)
        request_id = required(doc, "arc:RequestId")
        same_id = session.scalar(
            select(ArchiveTransfer).where(
                ArchiveTransfer.holder_id == message.recipient.id,
                ArchiveTransfer.receiver_id == message.sender.id,
                ArchiveTransfer.request_id == request_id,
            )
        )
        if same_id is not None and same_id.identity_hash != identity_hash:
            raise ArchiveRuleViolation(f"rule request-id: request {request_id} was already made for another graduate")
        open_transfer = session.scalar(
            select(ArchiveTransfer)
            .where(
                ArchiveTransfer.identity_hash == identity_hash,
                ArchiveTransfer.holder_id == message.recipient.id,
                ArchiveTransfer.receiver_id == message.sender.id,
                ArchiveTransfer.status.in_((TransferStatus.REQUESTED, TransferStatus.DISPATCHED)),
            )
            .order_by(ArchiveTransfer.id.desc())
            .limit(1)
        )
        return record, identity_hash, same_id or open_transfer


# --- manifest -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Dispatch:
    record: Registration
    identity_hash: str
    transfer: ArchiveTransfer | None  # the open request it answers, if any
    documents: int


class ArchiveTransferManifestRules:
    def check(self, message: DomainMessage, session: Session) -> None:
        """The archive rules: filed registration, holder, receiving unit, confidential dispatch.

        Raises :class:`RegistrationNotFiled` or :class:`ArchiveRuleViolation` naming the rule.
        """
        self._dispatch(message, session)

    def apply(self, message: DomainMessage, session: Session) -> None:
        """Mark the transfer dispatched (a new one if nothing was requested) and start the receipt clock."""
        found = self._dispatch(message, session)
        doc = message.document
        transfer = found.transfer
        if transfer is None:
            transfer = ArchiveTransfer(
                identity_hash=found.identity_hash,
                transfer_number=required(doc, "arc:TransferNumber"),
                request_id=text(doc, "arc:RequestId"),
                holder_id=message.sender.id,
                receiver_id=message.recipient.id,
                documents_missing=0,
                documents_damaged=0,
            )
            session.add(transfer)
        received_at = message.received_at
        transfer.leaves_late = found.record.leaves_late
        transfer.manifest_id = required(doc, "arc:ManifestId")
        transfer.status = TransferStatus.DISPATCHED
        transfer.dispatched_at = received_at
        transfer.dispatch_method = required(doc, "arc:Dispatch/arc:Method")
        transfer.waybill_number = text(doc, "arc:Dispatch/arc:WaybillNumber")
        transfer.documents = found.documents
        transfer.receipt_due_at = Limits.from_settings(message.settings).receipt_due(
            received_at, found.record.leaves_late
        )
        transfer.updated_at = received_at
        notify(
            session,
            "archive_dispatched",
            received_at,
            identity_hash=found.identity_hash,
            message_id=message.message_id,
            facts={
                "transfer_number": transfer.transfer_number,
                "holder": message.sender.id,
                "receiver": message.recipient.id,
                "method": transfer.dispatch_method,
                "waybill": transfer.waybill_number,
                "documents": found.documents,
                "due": transfer.receipt_due_at.isoformat(),
            },
        )

    def _dispatch(self, message: DomainMessage, session: Session) -> _Dispatch:
        doc = message.document
        sender, receiver = message.sender.id, message.recipient.id
        identity_hash = message.hasher(required(doc, "arc:IdentityNumber"))
        _check_receiving_unit(required(doc, "arc:ReceivingUnit/c:CreditCode"), receiver, "recipient")
        record = _filed(session, identity_hash, required(doc, "arc:TransferNumber"))
        _check_holder(session, record, identity_hash, sender)
        _check_receiver(session, record, receiver)

        documents = doc.findall("arc:Documents/arc:Document", NS)
        confidential = sum(1 for d in documents if flag(d, "arc:Confidential"))
        methods = code_list("dispatch-methods")
        refusal = dispatch_refusal(
            required(doc, "arc:Dispatch/arc:Method"),
            [code for code, row in methods.items() if row["confidential_allowed"] == "yes"],
            confidential,
        )
        if refusal is not None:
            raise ArchiveRuleViolation(refusal)

        manifest_id = required(doc, "arc:ManifestId")
        declared = session.scalar(
            select(ArchiveTransfer).where(
                ArchiveTransfer.holder_id == sender, ArchiveTransfer.manifest_id == manifest_id
            )
        )
        if declared is not None:
            raise ArchiveRuleViolation(f"rule manifest-id: manifest {manifest_id} was already declared by {sender}")
        return _Dispatch(record, identity_hash, self._answered(message, session, identity_hash), len(documents))

    def _answered(self, message: DomainMessage, session: Session, identity_hash: str) -> ArchiveTransfer | None:
        """The open request this manifest answers: the one it names, else this graduate's latest."""
        sender, receiver = message.sender.id, message.recipient.id
        request_id = text(message.document, "arc:RequestId")
        if request_id is not None:
            named = session.scalar(
                select(ArchiveTransfer)
                .where(ArchiveTransfer.holder_id == sender, ArchiveTransfer.request_id == request_id)
                .order_by(ArchiveTransfer.id.desc())
                .limit(1)
            )
            if named is not None:
                if named.identity_hash != identity_hash:
                    raise ArchiveRuleViolation(f"rule request-id: request {request_id} is for another graduate")
                if named.receiver_id != receiver:
                    raise ArchiveRuleViolation(
                        f"rule request-id: request {request_id} came from {named.receiver_id}, "
                        f"but the manifest goes to {receiver}"
                    )
                if named.status != TransferStatus.REQUESTED:
                    raise ArchiveRuleViolation(
                        f"rule request-id: request {request_id} was already answered by manifest {named.manifest_id}"
                    )
                return named
        return session.scalar(
            select(ArchiveTransfer)
            .where(
                ArchiveTransfer.identity_hash == identity_hash,
                ArchiveTransfer.holder_id == sender,
                ArchiveTransfer.receiver_id == receiver,
                ArchiveTransfer.status == TransferStatus.REQUESTED,
            )
            .order_by(ArchiveTransfer.id.desc())
            .limit(1)
        )


# --- receipt ------------------------------------------------------------------------------------


class ArchiveReceiptRules:
    def check(self, message: DomainMessage, session: Session) -> None:
        """The receipt answers a dispatched, not yet receipted manifest of this graduate.

        Raises :class:`ArchiveRuleViolation`.
        """
        self._transfer(message, session)

    def apply(self, message: DomainMessage, session: Session) -> None:
        """Close the transfer and count what is missing or damaged."""
        transfer = self._transfer(message, session)
        statuses = [text(d, "arc:Status") for d in message.document.findall("arc:DocumentReceipt", NS)]
        transfer.status = TransferStatus.RECEIVED
        transfer.received_at = message.received_at
        transfer.documents_missing = statuses.count("missing")
        transfer.documents_damaged = statuses.count("damaged")
        transfer.updated_at = message.received_at
        notify(
            session,
            "archive_received",
            message.received_at,
            identity_hash=transfer.identity_hash,
            message_id=message.message_id,
            facts={
                "transfer_number": transfer.transfer_number,
                "holder": transfer.holder_id,
                "receiver": transfer.receiver_id,
                "missing": transfer.documents_missing,
                "damaged": transfer.documents_damaged,
            },
        )

    def _transfer(self, message: DomainMessage, session: Session) -> ArchiveTransfer:
        doc = message.document
        manifest_id = required(doc, "arc:ManifestId")
        transfer = session.scalar(
            select(ArchiveTransfer).where(
                ArchiveTransfer.manifest_id == manifest_id,
                ArchiveTransfer.holder_id == message.recipient.id,
                ArchiveTransfer.receiver_id == message.sender.id,
            )
        )
        if transfer is None:
            raise ArchiveRuleViolation(
                f"rule receipt: {message.recipient.id} dispatched no archive to {message.sender.id} "
                f"under manifest {manifest_id}"
            )
        if transfer.identity_hash != message.hasher(required(doc, "arc:IdentityNumber")):
            raise ArchiveRuleViolation(f"rule receipt: manifest {manifest_id} is for another graduate")
        if transfer.status != TransferStatus.DISPATCHED:
            raise ArchiveRuleViolation(f"rule receipt: the archive of manifest {manifest_id} was already receipted")
        return transfer
