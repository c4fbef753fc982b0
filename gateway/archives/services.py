"""Archive transfer request, manifest and receipt: the service rules that run the transfer clock.

- ``ArchiveTransferRequest`` (receiving unit -> holder) starts the holder's dispatch clock.
- ``ArchiveTransferManifest`` (holder -> receiving unit) is checked against the archive rules of
  :mod:`gateway.archives.rules`, the graduate's filed registration being the source of truth (and
  the registry for the employer it names), and starts the receiver's receipt clock.
- ``ArchiveReceipt`` (receiving unit -> holder) closes the transfer.

The request and the manifest both need a filed registration with the transfer number they quote,
and must be addressed to (sent by) the unit that holds the archive now: the graduate's university,
or the unit that last receipted it. A graduate's archive has one open transfer at a time. Identity
numbers are looked up by their keyed hash only.

Races between concurrent messages are decided by the database, not by the checks (which only
give the clear answer when nothing races): a new transfer is an insert under the unique
constraints of :class:`~gateway.archives.models.ArchiveTransfer`, and answering a request or
receipting a manifest is an ``UPDATE`` conditional on the transfer's status. The loser of a race
is refused ``ARCHIVE_TRANSFER_DUPLICATE``.

The reads are built once, with their values as parameters (issue 13); those that need one column
select it alone instead of a whole transfer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.archives.deadlines import Limits
from gateway.archives.facts import RegistryAgencies, registered_employer, registration_facts
from gateway.archives.models import OPEN_STATUSES, ArchiveTransfer, TransferStatus
from gateway.archives.rules import allowed_receivers, dispatch_refusal, missing_documents
from gateway.codes.lists import code_list
from gateway.domain.documents import NS, required, text
from gateway.domain.message import DomainMessage
from gateway.errors import (
    ArchiveIncomplete,
    ArchiveRuleViolation,
    ArchiveTransferDuplicate,
    ArchiveTransferUnknown,
    RegistrationNotFiled,
)
from gateway.notices.record import notify
from gateway.registrations.models import Registration
from gateway.registrations.rules import filed_registration
from gateway.registry.snapshot import RegistrySnapshot

_T = cast(Table, ArchiveTransfer.__table__)
_LATEST_RECEIVER = (
    select(_T.c.receiver_id)
    .where(_T.c.identity_hash == bindparam("identity_hash"), _T.c.status == TransferStatus.RECEIVED)
    .order_by(_T.c.received_at.desc(), _T.c.id.desc())
    .limit(1)
)
_OPEN = (
    select(ArchiveTransfer)
    .where(ArchiveTransfer.identity_hash == bindparam("identity_hash"), ArchiveTransfer.status.in_(OPEN_STATUSES))
    .limit(1)
)
_REQUEST = select(ArchiveTransfer).where(
    ArchiveTransfer.holder_id == bindparam("holder"),
    ArchiveTransfer.receiver_id == bindparam("receiver"),
    ArchiveTransfer.request_id == bindparam("request_id"),
)
_DECLARED = select(_T.c.id).where(_T.c.holder_id == bindparam("holder"), _T.c.manifest_id == bindparam("manifest_id"))
_REQUEST_TO_HOLDER = (
    select(ArchiveTransfer)
    .where(ArchiveTransfer.holder_id == bindparam("holder"), ArchiveTransfer.request_id == bindparam("request_id"))
    .order_by(ArchiveTransfer.id.desc())
    .limit(1)
)
_LATEST_REQUEST = (
    select(ArchiveTransfer)
    .where(
        ArchiveTransfer.identity_hash == bindparam("identity_hash"),
        ArchiveTransfer.holder_id == bindparam("holder"),
        ArchiveTransfer.receiver_id == bindparam("receiver"),
        ArchiveTransfer.status == TransferStatus.REQUESTED,
    )
    .order_by(ArchiveTransfer.id.desc())
    .limit(1)
)
_MANIFEST = select(ArchiveTransfer).where(
    ArchiveTransfer.manifest_id == bindparam("manifest_id"),
    ArchiveTransfer.holder_id == bindparam("holder"),
    ArchiveTransfer.receiver_id == bindparam("receiver"),
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
    receiver: str | None = session.scalar(_LATEST_RECEIVER, {"identity_hash": identity_hash})
    return receiver if receiver is not None else record.university_id


def _check_receiver(session: Session, registry: RegistrySnapshot, record: Registration, receiver: str) -> None:
    view = registry.view(session)
    facts = registration_facts(record, registered_employer(view, record.employer_id))
    refusal = allowed_receivers(facts, RegistryAgencies(view)).refusal(receiver)
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


def _open_transfer(session: Session, identity_hash: str) -> ArchiveTransfer | None:
    """The graduate's open (requested or dispatched) transfer; the database keeps at most one."""
    return session.scalar(_OPEN, {"identity_hash": identity_hash})


def _already_moving(transfer: ArchiveTransfer) -> ArchiveTransferDuplicate:
    what = f"request {transfer.request_id}" if transfer.request_id else "a transfer"
    if transfer.status == TransferStatus.DISPATCHED:
        what = f"manifest {transfer.manifest_id}"
    return ArchiveTransferDuplicate(
        f"the graduate's archive is already {transfer.status} from {transfer.holder_id} to {transfer.receiver_id} "
        f"({what}); an archive has one open transfer at a time"
    )


def _insert(session: Session, transfer: ArchiveTransfer) -> None:
    """Add a new transfer; a concurrent message that took its manifest id, request id or the
    graduate's one open transfer first makes the database refuse it."""
    session.add(transfer)
    try:
        session.flush()
    except IntegrityError:
        raise ArchiveTransferDuplicate(
            "another message opened a transfer of this archive, or used this request or manifest id, at the same "
            "moment; the archive has one open transfer at a time"
        ) from None


def _advance(session: Session, transfer_pk: int, from_status: str, values: dict[str, Any]) -> None:
    """Move a transfer on only if it is still ``from_status``: of two concurrent messages, one does."""
    moved = cast(
        CursorResult[Any],
        session.execute(
            update(ArchiveTransfer)
            .where(ArchiveTransfer.id == transfer_pk, ArchiveTransfer.status == from_status)
            .values(**values)
            .execution_options(synchronize_session="fetch")
        ),
    )
    if moved.rowcount != 1:
        raise ArchiveTransferDuplicate(f"the transfer is no longer {from_status}: another message moved it on first")


# --- request ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchiveTransferRequestRules:
    registry: RegistrySnapshot  # the process's: the registered employer and the agencies

    def check(self, message: DomainMessage, session: Session) -> None:
        """The requesting unit is the receiving unit, may receive the archive, and asks its holder.

        Raises :class:`RegistrationNotFiled`, :class:`ArchiveRuleViolation` or
        :class:`ArchiveTransferDuplicate` (the request id used for another graduate, or the archive
        already moving elsewhere).
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
        _insert(
            session,
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
            ),
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
        _check_receiver(session, self.registry, record, message.sender.id)
        request_id = required(doc, "arc:RequestId")
        same_id = session.scalar(
            _REQUEST, {"holder": message.recipient.id, "receiver": message.sender.id, "request_id": request_id}
        )
        if same_id is not None and same_id.identity_hash != identity_hash:
            raise ArchiveTransferDuplicate(f"request {request_id} was already made for another graduate")
        open_transfer = _open_transfer(session, identity_hash)
        if open_transfer is not None and (open_transfer.holder_id, open_transfer.receiver_id) != (
            message.recipient.id,
            message.sender.id,
        ):
            raise _already_moving(open_transfer)
        return record, identity_hash, same_id or open_transfer


# --- manifest -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Dispatch:
    record: Registration
    identity_hash: str
    transfer: ArchiveTransfer | None  # the open request it answers, if any
    documents: int


@dataclass(frozen=True)
class ArchiveTransferManifestRules:
    registry: RegistrySnapshot  # the process's: the registered employer and the agencies

    def check(self, message: DomainMessage, session: Session) -> None:
        """The archive rules: filed registration, holder, receiving unit, dispatch method, completeness.

        Raises :class:`RegistrationNotFiled`, :class:`ArchiveRuleViolation` naming the rule,
        :class:`ArchiveIncomplete` naming what is missing, :class:`ArchiveTransferUnknown` (a
        request of another graduate or receiver) or :class:`ArchiveTransferDuplicate`.
        """
        self._dispatch(message, session)

    def apply(self, message: DomainMessage, session: Session) -> None:
        """Mark the transfer dispatched (a new one if nothing was requested) and start the receipt clock."""
        found = self._dispatch(message, session)
        doc = message.document
        received_at = message.received_at
        dispatched: dict[str, Any] = {
            "leaves_late": found.record.leaves_late,
            "manifest_id": required(doc, "arc:ManifestId"),
            "status": TransferStatus.DISPATCHED,
            "dispatched_at": received_at,
            "dispatch_method": required(doc, "arc:Dispatch/arc:Method"),
            "waybill_number": text(doc, "arc:Dispatch/arc:WaybillNumber"),
            "documents": found.documents,
            "receipt_due_at": Limits.from_settings(message.settings).receipt_due(received_at, found.record.leaves_late),
            "updated_at": received_at,
        }
        transfer_number = required(doc, "arc:TransferNumber")
        if found.transfer is not None:
            _advance(session, found.transfer.id, TransferStatus.REQUESTED, dispatched)
            transfer_number = found.transfer.transfer_number
        else:
            _insert(
                session,
                ArchiveTransfer(
                    identity_hash=found.identity_hash,
                    transfer_number=transfer_number,
                    request_id=text(doc, "arc:RequestId"),
                    holder_id=message.sender.id,
                    receiver_id=message.recipient.id,
                    documents_missing=0,
                    documents_damaged=0,
                    **dispatched,
                ),
            )
        notify(
            session,
            "archive_dispatched",
            received_at,
            identity_hash=found.identity_hash,
            message_id=message.message_id,
            facts={
                "transfer_number": transfer_number,
                "holder": message.sender.id,
                "receiver": message.recipient.id,
                "method": dispatched["dispatch_method"],
                "waybill": dispatched["waybill_number"],
                "documents": found.documents,
                "due": dispatched["receipt_due_at"].isoformat(),
            },
        )

    def _dispatch(self, message: DomainMessage, session: Session) -> _Dispatch:
        doc = message.document
        sender, receiver = message.sender.id, message.recipient.id
        identity_hash = message.hasher(required(doc, "arc:IdentityNumber"))
        _check_receiving_unit(required(doc, "arc:ReceivingUnit/c:CreditCode"), receiver, "recipient")
        record = _filed(session, identity_hash, required(doc, "arc:TransferNumber"))
        _check_holder(session, record, identity_hash, sender)
        _check_receiver(session, self.registry, record, receiver)

        refusal = dispatch_refusal(required(doc, "arc:Dispatch/arc:Method"), code_list("dispatch-methods"))
        if refusal is not None:
            raise ArchiveRuleViolation(refusal)
        documents = doc.findall("arc:Documents/arc:Document", NS)
        types = code_list("archive-document-types")
        missing = missing_documents({text(d, "arc:Type") or "" for d in documents}, types)
        if missing:
            named = ", ".join(f"{code} ({types[code]['name_zh']}, {types[code]['name_en']})" for code in missing)
            raise ArchiveIncomplete(
                f"the manifest lists no {named}: every graduate's archive holds it "
                "(schemas/codes/archive-document-types.csv, required=yes)"
            )

        manifest_id = required(doc, "arc:ManifestId")
        declared = session.scalar(_DECLARED, {"holder": sender, "manifest_id": manifest_id})
        if declared is not None:
            raise ArchiveTransferDuplicate(f"manifest {manifest_id} was already declared by {sender}")
        answered = self._answered(message, session, identity_hash)
        if answered is None:
            open_transfer = _open_transfer(session, identity_hash)
            if open_transfer is not None:
                raise _already_moving(open_transfer)
        return _Dispatch(record, identity_hash, answered, len(documents))

    def _answered(self, message: DomainMessage, session: Session, identity_hash: str) -> ArchiveTransfer | None:
        """The open request this manifest answers: the one it names, else this graduate's latest.

        A request id the gateway never saw is taken as one made outside it (on paper): the
        manifest then opens a transfer of its own.
        """
        sender, receiver = message.sender.id, message.recipient.id
        request_id = text(message.document, "arc:RequestId")
        if request_id is not None:
            named = session.scalar(_REQUEST_TO_HOLDER, {"holder": sender, "request_id": request_id})
            if named is not None:
                if named.identity_hash != identity_hash:
                    raise ArchiveTransferUnknown(f"request {request_id} to {sender} is for another graduate")
                if named.receiver_id != receiver:
                    raise ArchiveTransferUnknown(
                        f"request {request_id} came from {named.receiver_id}, but the manifest goes to {receiver}"
                    )
                if named.status != TransferStatus.REQUESTED:
                    raise ArchiveTransferDuplicate(
                        f"request {request_id} was already answered by manifest {named.manifest_id}"
                    )
                return named
        return session.scalar(_LATEST_REQUEST, {"identity_hash": identity_hash, "holder": sender, "receiver": receiver})


# --- receipt ------------------------------------------------------------------------------------


class ArchiveReceiptRules:
    def check(self, message: DomainMessage, session: Session) -> None:
        """The receipt answers a dispatched, not yet receipted manifest of this graduate.

        Raises :class:`ArchiveTransferUnknown` or :class:`ArchiveTransferDuplicate` (already receipted).
        """
        self._transfer(message, session)

    def apply(self, message: DomainMessage, session: Session) -> None:
        """Close the transfer and count what is missing or damaged."""
        transfer = self._transfer(message, session)
        statuses = [text(d, "arc:Status") for d in message.document.findall("arc:DocumentReceipt", NS)]
        received_at: datetime = message.received_at
        _advance(
            session,
            transfer.id,
            TransferStatus.DISPATCHED,
            {
                "status": TransferStatus.RECEIVED,
                "received_at": received_at,
                "documents_missing": statuses.count("missing"),
                "documents_damaged": statuses.count("damaged"),
                "updated_at": received_at,
            },
        )
        notify(
            session,
            "archive_received",
            received_at,
            identity_hash=transfer.identity_hash,
            message_id=message.message_id,
            facts={
                "transfer_number": transfer.transfer_number,
                "holder": transfer.holder_id,
                "receiver": transfer.receiver_id,
                "missing": statuses.count("missing"),
                "damaged": statuses.count("damaged"),
            },
        )

    def _transfer(self, message: DomainMessage, session: Session) -> ArchiveTransfer:
        doc = message.document
        manifest_id = required(doc, "arc:ManifestId")
        transfer = session.scalar(
            _MANIFEST, {"manifest_id": manifest_id, "holder": message.recipient.id, "receiver": message.sender.id}
        )
        if transfer is None:
            raise ArchiveTransferUnknown(
                f"{message.recipient.id} dispatched no archive to {message.sender.id} under manifest {manifest_id}"
            )
        if transfer.identity_hash != message.hasher(required(doc, "arc:IdentityNumber")):
            raise ArchiveTransferUnknown(f"manifest {manifest_id} is for another graduate")
        if transfer.status != TransferStatus.DISPATCHED:
            raise ArchiveTransferDuplicate(f"the archive of manifest {manifest_id} was already receipted")
        return transfer
