"""Destination registration, filing and rejection: the service rules that keep ``Registration`` current.

- ``DestinationRegistration`` (university -> education department) records the graduate's
  destination as registered; a corrected registration (same id) replaces it and must be filed again.
- ``RegistrationFiled`` marks it filed with its transfer and verification numbers.
- ``RegistrationRejected`` marks it rejected.
Filing or rejecting a registration the gateway never saw, or for another graduate, is refused.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.domain.documents import NS, day, flag, instant, required, text
from gateway.domain.message import DomainMessage
from gateway.errors import RegistrationUnknown
from gateway.notices.record import notify
from gateway.registrations.models import Registration, RegistrationStatus


class DestinationRegistrationRules:
    def check(self, message: DomainMessage, session: Session) -> None:
        """Nothing beyond codes and access rights: a registration may always be (re)submitted."""

    def apply(self, message: DomainMessage, session: Session) -> None:
        doc = message.document
        registration_id = required(doc, "reg:RegistrationId")
        record = session.scalar(
            select(Registration).where(
                Registration.university_id == message.sender.id, Registration.registration_id == registration_id
            )
        )
        corrected = record is not None
        if record is None:
            record = Registration(registration_id=registration_id, university_id=message.sender.id)
            session.add(record)
        record.education_department_id = message.recipient.id
        record.identity_hash = message.hasher(required(doc, "reg:Graduate/c:IdentityNumber"))
        record.name = required(doc, "reg:Graduate/c:Name")
        record.education_level = required(doc, "reg:Graduate/c:EducationLevel")
        record.major = required(doc, "reg:Graduate/c:Major")
        record.major_code = required(doc, "reg:Graduate/c:MajorCode")
        record.graduation_date = day(doc, "reg:Graduate/c:GraduationDate")
        record.leaves_late = flag(doc, "reg:Graduate/c:LeavesLate")
        record.destination_code = required(doc, "reg:DestinationCode")
        record.employer_id = text(doc, "reg:Employer/c:CreditCode")
        record.employer_name = text(doc, "reg:Employer/c:Name")
        record.employer_unit_nature = text(doc, "reg:Employer/c:UnitNature")
        record.employer_region = text(doc, "reg:Employer/c:Region")
        record.targeted_unit_id = text(doc, "reg:TargetedEmployment/reg:TargetedUnit/c:CreditCode")
        record.admitting_institution_id = text(doc, "reg:AdmittingInstitution/c:CreditCode")
        record.household_region = required(doc, "reg:HouseholdRegion")
        record.archive_receiver_choice = required(doc, "reg:ArchiveReceiverChoice")
        record.archive_receiver_id = text(doc, "reg:ArchiveReceiver")
        record.status = RegistrationStatus.REGISTERED
        record.transfer_number = None
        record.verification_number = None
        record.filed_at = None
        record.registered_at = instant(doc, "reg:RegisteredAt")
        record.updated_at = message.received_at
        notify(
            session,
            "registration_submitted",
            message.received_at,
            identity_hash=record.identity_hash,
            message_id=message.message_id,
            facts={"registration_id": registration_id, "university": message.sender.id, "corrected": corrected},
        )


def _registration_for(message: DomainMessage, session: Session) -> Registration:
    doc = message.document
    registration_id = required(doc, "reg:RegistrationId")
    record = session.scalar(
        select(Registration).where(
            Registration.university_id == message.recipient.id,
            Registration.registration_id == registration_id,
            Registration.education_department_id == message.sender.id,
        )
    )
    if record is None:
        raise RegistrationUnknown(
            f"registration {registration_id} of university {message.recipient.id} was never sent to {message.sender.id}"
        )
    if record.identity_hash != message.hasher(required(doc, "reg:IdentityNumber")):
        raise RegistrationUnknown(f"registration {registration_id} is for another graduate")
    return record


class RegistrationFiledRules:
    def check(self, message: DomainMessage, session: Session) -> None:
        _registration_for(message, session)

    def apply(self, message: DomainMessage, session: Session) -> None:
        record = _registration_for(message, session)
        record.status = RegistrationStatus.FILED
        record.transfer_number = required(message.document, "reg:TransferNumber")
        record.verification_number = required(message.document, "reg:VerificationNumber")
        record.filed_at = instant(message.document, "reg:FiledAt")
        record.updated_at = message.received_at
        notify(
            session,
            "registration_filed",
            message.received_at,
            identity_hash=record.identity_hash,
            message_id=message.message_id,
            facts={
                "registration_id": record.registration_id,
                "department": message.sender.id,
                "transfer_number": record.transfer_number,
                "verification_number": record.verification_number,
            },
        )


class RegistrationRejectedRules:
    def check(self, message: DomainMessage, session: Session) -> None:
        _registration_for(message, session)

    def apply(self, message: DomainMessage, session: Session) -> None:
        record = _registration_for(message, session)
        record.status = RegistrationStatus.REJECTED
        record.updated_at = message.received_at
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
    """The graduate's newest filed registration, the source of truth for archive routing."""
    return session.scalar(
        select(Registration)
        .where(Registration.identity_hash == identity_hash, Registration.status == RegistrationStatus.FILED)
        .order_by(Registration.filed_at.desc())
        .limit(1)
    )
