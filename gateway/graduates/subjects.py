"""Which graduate a business message is about, kept for the graduate's own access history.

A business document names its graduate by identity number (registrations, filings, offers and
answers relayed by a university, archive requests, manifests and receipts), or by the agreement it
steps (reviews and cancellations, by AgreementId between the two parties). The keyed hash of that
number is stored beside the message (:class:`MessageSubject`), in the message's own transaction;
the number itself never is. Verification requests are not indexed here: each is recorded as a use
(or refused attempt) of the graduate's grant instead.

Both statements are Core, built once (issue 13): the row is inserted without the ORM's unit of
work. Nothing reads it back in the message's transaction, so in the intake's group commit it waits
for the commit and goes with the batch's other subjects in one statement (``gateway.store.deferred``).
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table, and_, bindparam, insert, or_, select
from sqlalchemy.orm import Session

from gateway.agreements.models import Agreement
from gateway.domain.documents import text
from gateway.domain.message import DomainMessage
from gateway.graduates.models import MessageSubject
from gateway.grants.scope import SERVICE as VERIFICATION
from gateway.store.deferred import write

_A = cast(Table, Agreement.__table__)
_STEPPED_AGREEMENT = select(_A.c.identity_hash).where(
    _A.c.agreement_id == bindparam("agreement_id"),
    or_(
        and_(_A.c.employer_id == bindparam("a"), _A.c.university_id == bindparam("b")),
        and_(_A.c.employer_id == bindparam("b"), _A.c.university_id == bindparam("a")),
    ),
)
_INSERT = insert(cast(Table, MessageSubject.__table__))


def subject_of(message: DomainMessage, session: Session) -> str | None:
    """The keyed identity hash of the graduate ``message`` is about, or None (about no single graduate)."""
    if message.service == VERIFICATION:
        return None
    numbers = {
        (element.text or "").strip() for element in message.document.iter("{*}IdentityNumber") if len(element) == 0
    }
    if len(numbers) == 1:
        return message.hasher(numbers.pop())
    if numbers:
        return None
    agreement_id = text(message.document, "agr:AgreementId")
    if agreement_id is None:
        return None
    return session.scalar(
        _STEPPED_AGREEMENT, {"agreement_id": agreement_id, "a": message.sender.id, "b": message.recipient.id}
    )


def record_subject(message: DomainMessage, session: Session) -> None:
    """Index the stored ``message`` under its graduate (no row when it is about none)."""
    identity_hash = subject_of(message, session)
    if identity_hash is not None and message.message_pk is not None:
        write(session, _INSERT, {"message_pk": message.message_pk, "identity_hash": identity_hash})
