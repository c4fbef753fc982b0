"""Destination registration, filing and rejection: the service rules that keep ``Registration`` current.

- ``DestinationRegistration`` (university -> education department) records the graduate's
  destination as registered; a corrected registration (same id) replaces it and must be filed again.
  The registry is the authority on who an employer is: a registration that declares another unit
  nature for an employer registered with one is refused (``EMPLOYER_UNIT_NATURE_MISMATCH``). The
  employer is looked up in the registry snapshot of the message's transaction
  (``gateway.registry.snapshot``), in no query. A
  graduate trained under a targeted agreement is registered to the targeted unit unless the
  registration carries the agreement's release (``TARGETED_TRAINING_NOT_RELEASED``).
- ``RegistrationFiled`` marks it filed with its transfer and verification numbers.
- ``RegistrationRejected`` marks it rejected.
Filing or rejecting a registration the gateway never saw, or for another graduate, is refused.
Which filed registration counts is decided by the order the gateway received the filings.

The rules read and write the ``registrations`` table with Core statements built once, at import (or
once per dialect, the upsert): building them for each message, and loading ORM objects the rules
only read two columns of, cost several times what running them does (issue 13). A ``Registration``
the session already holds is expired after such a write (``gateway.store.db.expire_held``), so
that nothing read later in the transaction (several messages may share one) sees the row as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, NamedTuple, cast

from sqlalchemy import Insert, Table, bindparam, exists, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from gateway.codes.lists import code_list
from gateway.domain.documents import NS, day, flag, instant, required, text
from gateway.domain.message import DomainMessage
from gateway.errors import EmployerUnitNatureMismatch, RegistrationUnknown, TargetedTrainingNotReleased
from gateway.notices.record import notify
from gateway.registrations.models import Registration, RegistrationStatus
from gateway.registry.models import ParticipantKind
from gateway.registry.snapshot import ParticipantEntry, RegistrySnapshot
from gateway.store.db import expire_held

_R = cast(Table, Registration.__table__)
_HELD_BY_UNIVERSITY = (_R.c.university_id == bindparam("university"), _R.c.registration_id == bindparam("registration"))
_REGISTERED = select(_R.c.id).where(*_HELD_BY_UNIVERSITY)
_SENT_TO_DEPARTMENT = (*_HELD_BY_UNIVERSITY, _R.c.education_department_id == bindparam("department"))
_SENT = select(_R.c.id, _R.c.identity_hash).where(*_SENT_TO_DEPARTMENT)
# A filing or a rejection in one statement: the row only if it is still the graduate's. The
# columns it sets are the parameters named after them (a filing sets more than a rejection).
_UPDATE_SENT = update(_R).where(*_SENT_TO_DEPARTMENT, _R.c.identity_hash == bindparam("identity")).returning(_R.c.id)
_FILED = (
    select(Registration)
    .where(Registration.identity_hash == bindparam("identity_hash"), Registration.status == RegistrationStatus.FILED)
    .order_by(Registration.filed_received_at.desc(), Registration.id.desc())
    .limit(1)
)


@dataclass(frozen=True)
class DestinationRegistrationRules:
    registry: RegistrySnapshot  # the process's: the employer a registration names

    def check(self, message: DomainMessage, session: Session) -> None:
        """The employer's unit nature is the registry's; a targeted graduate goes to the targeted unit.

        Raises :class:`EmployerUnitNatureMismatch` or :class:`TargetedTrainingNotReleased`.
        """
        doc = message.document
        employer_id = text(doc, "reg:Employer/c:CreditCode")
        if employer_id is not None:
            employer = self.registry.view(session).participant(employer_id)
            _check_unit_nature(employer, required(doc, "reg:Employer/c:UnitNature"))
        targeted = text(doc, "reg:TargetedEmployment/reg:TargetedUnit/c:CreditCode")
        released = text(doc, "reg:TargetedEmployment/reg:ReleaseReference") is not None
        if targeted is not None and targeted != employer_id and not released:
            name = text(doc, "reg:TargetedEmployment/reg:TargetedUnit/c:Name")
            registered = f"to employer {employer_id}" if employer_id else "with no employer"
            raise TargetedTrainingNotReleased(
                f"the graduate was trained under a targeted agreement with {targeted} ({name}) and must be "
                f"registered to that unit, not {registered}, unless the registration carries the release of "
                "the agreement (TargetedEmployment/ReleaseReference)"
            )

    def apply(self, message: DomainMessage, session: Session) -> None:
        """Record the registration, or replace the one with the same id (a correction).

        One statement, an insert that updates the row the university already has under this id:
        two messages for the same registration at once cannot both insert it.
        """
        doc = message.document
        contract_date = text(doc, "reg:ContractDate")
        values: dict[str, Any] = {
            "registration_id": required(doc, "reg:RegistrationId"),
            "university_id": message.sender.id,
            "education_department_id": message.recipient.id,
            "identity_hash": message.hasher(required(doc, "reg:Graduate/c:IdentityNumber")),
            "name": required(doc, "reg:Graduate/c:Name"),
            "education_level": required(doc, "reg:Graduate/c:EducationLevel"),
            "major": required(doc, "reg:Graduate/c:Major"),
            "major_code": required(doc, "reg:Graduate/c:MajorCode"),
            "graduation_date": day(doc, "reg:Graduate/c:GraduationDate"),
            "leaves_late": flag(doc, "reg:Graduate/c:LeavesLate"),
            "destination_code": required(doc, "reg:DestinationCode"),
            "employer_id": text(doc, "reg:Employer/c:CreditCode"),
            "employer_name": text(doc, "reg:Employer/c:Name"),
            "employer_unit_nature": text(doc, "reg:Employer/c:UnitNature"),
            "employer_region": text(doc, "reg:Employer/c:Region"),
            "contract_reference": text(doc, "reg:ContractReference"),
            "contract_date": day(doc, "reg:ContractDate") if contract_date is not None else None,
            "targeted_unit_id": text(doc, "reg:TargetedEmployment/reg:TargetedUnit/c:CreditCode"),
            "targeted_release_reference": text(doc, "reg:TargetedEmployment/reg:ReleaseReference"),
            "admitting_institution_id": text(doc, "reg:AdmittingInstitution/c:CreditCode"),
            "household_region": required(doc, "reg:HouseholdRegion"),
            "archive_receiver_choice": required(doc, "reg:ArchiveReceiverChoice"),
            "archive_receiver_id": text(doc, "reg:ArchiveReceiver"),
            "status": RegistrationStatus.REGISTERED,
            "transfer_number": None,
            "verification_number": None,
            "filed_at": None,
            "filed_received_at": None,
            "registered_at": instant(doc, "reg:RegisteredAt"),
            "updated_at": message.received_at,
        }
        key = {"university": message.sender.id, "registration": values["registration_id"]}
        dialect = session.get_bind().dialect.name
        upsert = _upsert(dialect, tuple(values))
        if dialect == "postgresql":  # the upsert itself says whether the row was there
            pk, corrected = session.execute(upsert, {**values, **key}).one()
        else:
            corrected = session.execute(_REGISTERED, key).first() is not None
            pk = session.execute(upsert, values).scalar_one()
        expire_held(session, Registration, pk)
        notify(
            session,
            "registration_submitted",
            message.received_at,
            identity_hash=values["identity_hash"],
            message_id=message.message_id,
            facts={
                "registration_id": values["registration_id"],
                "university": message.sender.id,
                "corrected": corrected,
            },
        )


def _check_unit_nature(employer: ParticipantEntry | None, declared: str) -> None:
    if employer is None or employer.kind != ParticipantKind.EMPLOYER or employer.unit_nature is None:
        return  # not registered as an employer: the registration's word stands
    if employer.unit_nature == declared:
        return
    natures = code_list("unit-nature-codes")
    raise EmployerUnitNatureMismatch(
        f"employer {employer.id} ({employer.name}) is registered with unit nature {employer.unit_nature} "
        f"({natures[employer.unit_nature]['name_zh']}), but the registration declares {declared} "
        f"({natures[declared]['name_zh'] if declared in natures else 'not a unit nature code'}): the university "
        "corrects the registration, or the operator corrects the registry first"
    )


@cache
def _upsert(dialect: str, columns: tuple[str, ...]) -> Insert:
    """Insert a registration's ``columns``, or set them (but the key) on the university's row with the
    same registration id; returns the row's id.

    One statement: two messages for the same registration at once cannot both insert it. Built once
    per dialect (the ON CONFLICT clause is the dialect's) and set of columns (``apply`` has one).

    On PostgreSQL it also returns whether the university had the row before (``corrected``, from
    ``_REGISTERED`` as a WITH query, which reads the table as it was before the statement: the
    parameters ``university`` and ``registration`` name the row), saving a SELECT a registration in
    the group commit's serial part. SQLite evaluates such a WITH query after the insert, so there
    ``apply`` asks first.
    """
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(_R)
    key = ("university_id", "registration_id")
    changed = {column: statement.excluded[column] for column in columns if column not in key}
    upsert = statement.on_conflict_do_update(index_elements=key, set_=changed)
    if dialect != "postgresql":
        return upsert.returning(_R.c.id)
    earlier = _REGISTERED.cte("earlier")
    return upsert.returning(_R.c.id, exists(select(earlier.c.id)).label("corrected")).add_cte(earlier)


class _Sent(NamedTuple):
    """The registration a filing or a rejection names, as far as its rules read it."""

    pk: int
    registration_id: str
    identity_hash: str


def _registration_for(message: DomainMessage, session: Session) -> _Sent:
    """The registration the education department's message names; raises :class:`RegistrationUnknown`
    when the gateway never sent it to this department, or it is another graduate's."""
    doc = message.document
    registration_id = required(doc, "reg:RegistrationId")
    record = session.execute(_SENT, _named(message, registration_id)).one_or_none()
    if record is None:
        raise RegistrationUnknown(
            f"registration {registration_id} of university {message.recipient.id} was never sent to {message.sender.id}"
        )
    if record.identity_hash != message.hasher(required(doc, "reg:IdentityNumber")):
        raise RegistrationUnknown(f"registration {registration_id} is for another graduate")
    return _Sent(record.id, registration_id, record.identity_hash)


def _named(message: DomainMessage, registration_id: str) -> dict[str, str]:
    return {"university": message.recipient.id, "registration": registration_id, "department": message.sender.id}


def _update(message: DomainMessage, session: Session, **values: Any) -> _Sent:
    """Set ``values`` on the registration the message names, checking in the same statement what
    :func:`_registration_for` checks; raises :class:`RegistrationUnknown` as it does.

    The one statement is the check: when it finds no row, :func:`_registration_for` says why (never
    sent to this department, another graduate's), and if it finds the row after all, a concurrent
    correction changed it in between.
    """
    doc = message.document
    registration_id = required(doc, "reg:RegistrationId")
    identity_hash = message.hasher(required(doc, "reg:IdentityNumber"))
    parameters = {**_named(message, registration_id), "identity": identity_hash, **values}
    pk = session.execute(_UPDATE_SENT, parameters).scalar_one_or_none()
    if pk is None:
        _registration_for(message, session)
        raise RegistrationUnknown(f"registration {registration_id} changed while this message was accepted")
    expire_held(session, Registration, pk)
    return _Sent(pk, registration_id, identity_hash)


class RegistrationFiledRules:
    def check(self, message: DomainMessage, session: Session) -> None:
        """Nothing before the message is stored: ``apply``'s one UPDATE checks that the registration
        was sent to this department and is this graduate's, and refuses the filing as the check did
        (the piece is rolled back with everything it stored). A SELECT here repeated that UPDATE's
        WHERE clause: a statement a filing, in the group commit's serial part (issue 13)."""

    def apply(self, message: DomainMessage, session: Session) -> None:
        transfer_number = required(message.document, "reg:TransferNumber")
        verification_number = required(message.document, "reg:VerificationNumber")
        record = _update(
            message,
            session,
            status=RegistrationStatus.FILED,
            transfer_number=transfer_number,
            verification_number=verification_number,
            filed_at=instant(message.document, "reg:FiledAt"),
            filed_received_at=message.received_at,
            updated_at=message.received_at,
        )
        notify(
            session,
            "registration_filed",
            message.received_at,
            identity_hash=record.identity_hash,
            message_id=message.message_id,
            facts={
                "registration_id": record.registration_id,
                "department": message.sender.id,
                "transfer_number": transfer_number,
                "verification_number": verification_number,
            },
        )


class RegistrationRejectedRules:
    def check(self, message: DomainMessage, session: Session) -> None:
        """Nothing before the message is stored: ``apply``'s UPDATE checks it (as a filing's)."""

    def apply(self, message: DomainMessage, session: Session) -> None:
        record = _update(message, session, status=RegistrationStatus.REJECTED, updated_at=message.received_at)
        reasons = [
            (reason.findtext("reg:Text", namespaces=NS) or "").strip()
            for reason in message.document.iterfind("reg:Reason", NS)
        ]
        notify(
            session,
            "registration_rejected",
            message.received_at,
            identity_hash=record.identity_hash,
            message_id=message.message_id,
            facts={"registration_id": record.registration_id, "department": message.sender.id, "reasons": reasons},
        )


def filed_registration(session: Session, identity_hash: str) -> Registration | None:
    """The graduate's filed registration that counts, the source of truth for archive routing.

    The last one the gateway filed, by the time it received the filing (then by the order it
    stored them), never by a date written inside a document: a filing that declares an earlier
    ``FiledAt`` but arrives later still counts.
    """
    return session.scalar(_FILED, {"identity_hash": identity_hash})
