"""Which graduate a business message is about, found from its document when it is accepted.

In order: the identity number the document carries (every service about one graduate names it,
except the steps of an agreement after the offer and a verification request that leaves it out);
else the agreement it names, between its sender and recipient (the offer recorded the graduate);
else the transfer or verification number of a verification request's subject (the filed
registration that holds it). The result is the keyed hash, never the number.
"""

from __future__ import annotations

from lxml import etree
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from gateway.agreements.models import Agreement
from gateway.domain.documents import text
from gateway.domain.message import DomainMessage
from gateway.graduates.models import MessageSubject
from gateway.registrations.models import Registration


def subject_hash(message: DomainMessage, session: Session) -> str | None:
    """The keyed identity hash of the graduate ``message`` is about, or None when it names none."""
    numbers = {
        (element.text or "").strip()
        for element in message.document.iter(etree.Element)
        if etree.QName(element).localname == "IdentityNumber" and not len(element) and (element.text or "").strip()
    }
    if len(numbers) == 1:
        return message.hasher(numbers.pop())
    if numbers:  # no schema allows two graduates in one document; do not guess between them
        return None
    agreement_id = text(message.document, "agr:AgreementId")
    if agreement_id is not None:
        parties = (message.sender.id, message.recipient.id)
        found: str | None = session.scalar(
            select(Agreement.identity_hash).where(
                Agreement.agreement_id == agreement_id,
                Agreement.employer_id.in_(parties),
                Agreement.university_id.in_(parties),
            )
        )
        return found
    transfer = text(message.document, "ver:Subject/ver:TransferNumber")
    verification = text(message.document, "ver:Subject/ver:VerificationNumber")
    conditions = []
    if transfer is not None:
        conditions.append(Registration.transfer_number == transfer)
    if verification is not None:
        conditions.append(Registration.verification_number == verification)
    if not conditions:
        return None
    hashes = set(session.scalars(select(Registration.identity_hash).where(or_(*conditions))))
    return hashes.pop() if len(hashes) == 1 else None


def record_subject(message: DomainMessage, session: Session) -> None:
    """Index the stored ``message`` under its graduate (in the caller's transaction), if it has one."""
    if message.message_pk is None:
        raise ValueError("a message is indexed once it is stored")
    identity_hash = subject_hash(message, session)
    if identity_hash is not None:
        session.add(MessageSubject(message_pk=message.message_pk, identity_hash=identity_hash))
