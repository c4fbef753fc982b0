"""A graduate's access history (data tracker): who used their authorisations, and what passed about them.

Two sources, both matched by the graduate's own account or keyed identity hash, never by name:

- every use and refused attempt of an authorisation (:class:`~gateway.grants.models.GrantUse`)
  recorded for the account: when, which organisation, which facts, for which purpose, the outcome
  and the fault code of a refusal;
- every business message about the graduate that passed the gateway
  (:class:`~gateway.graduates.models.MessageSubject`): registration submitted, filed or rejected,
  agreement offered, answered, reviewed, cancellation requested or reviewed, archive requested,
  dispatched, received; with who sent it to whom.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from gateway.graduates.models import GraduateAccount, MessageSubject
from gateway.grants.models import GrantUse
from gateway.grants.scope import decode_facts
from gateway.messages.models import Message
from gateway.registry.models import Participant

# What each service means for the graduate (the portal words them in Chinese and English).
EVENTS = {
    "DestinationRegistration": "registration_submitted",
    "RegistrationFiled": "registration_filed",
    "RegistrationRejected": "registration_rejected",
    "AgreementOffer": "agreement_offered",
    "AgreementResponse": "agreement_answered",
    "AgreementReview": "agreement_reviewed",
    "AgreementCancellation": "agreement_cancellation_requested",
    "AgreementCancellationReview": "agreement_cancellation_reviewed",
    "ArchiveTransferRequest": "archive_requested",
    "ArchiveTransferManifest": "archive_dispatched",
    "ArchiveReceipt": "archive_received",
}


@dataclass(frozen=True)
class HistoryItem:
    """One line of the history. ``kind`` is ``verification`` (a use or refused attempt of an
    authorisation: the organisation is the verifier) or ``message`` (a message about the graduate:
    the organisation is its sender, ``recipient_*`` its recipient)."""

    at: datetime
    kind: str
    organisation_id: str
    organisation_name: str
    # verification
    grant_id: str | None = None
    facts: tuple[str, ...] = ()
    purpose: str | None = None
    outcome: str | None = None  # used | refused
    fault_code: str | None = None
    # message
    service: str | None = None
    event: str | None = None  # EVENTS[service]
    recipient_id: str | None = None
    recipient_name: str | None = None
    message_id: str | None = None


def history(session: Session, account: GraduateAccount, limit: int | None = None) -> list[HistoryItem]:
    """The account's history, newest first (at most ``limit`` items)."""
    items = _verifications(session, account) + _messages(session, account)
    items.sort(key=lambda item: item.at, reverse=True)  # stable: ties stay newest first
    return items[:limit] if limit is not None else items


def _verifications(session: Session, account: GraduateAccount) -> list[HistoryItem]:
    rows = session.execute(
        select(GrantUse, Participant.name)
        .join(Participant, Participant.id == GrantUse.verifier_id)
        .where(GrantUse.account_id == account.id)
        .order_by(GrantUse.id.desc())  # newest first among equal times, as the sort below keeps it
    )
    return [
        HistoryItem(
            at=use.at,
            kind="verification",
            organisation_id=use.verifier_id,
            organisation_name=name,
            grant_id=use.grant_id,
            facts=decode_facts(use.facts),
            purpose=use.purpose,
            outcome=use.outcome,
            fault_code=use.fault_code,
            message_id=use.message_id,
        )
        for use, name in rows
    ]


def _messages(session: Session, account: GraduateAccount) -> list[HistoryItem]:
    sender, recipient = aliased(Participant), aliased(Participant)
    rows = session.execute(
        select(
            Message.received_at,
            Message.sender_id,
            Message.recipient_id,
            Message.service,
            Message.message_id,
            sender.name,
            recipient.name,
        )
        .join(MessageSubject, MessageSubject.message_pk == Message.id)
        .join(sender, sender.id == Message.sender_id)
        .join(recipient, recipient.id == Message.recipient_id)
        .where(MessageSubject.identity_hash == account.identity_hash)
        .order_by(Message.id.desc())
    )
    return [
        HistoryItem(
            at=at,
            kind="message",
            organisation_id=sender_id,
            organisation_name=sender_name,
            service=service,
            event=EVENTS.get(service, service),
            recipient_id=recipient_id,
            recipient_name=recipient_name,
            message_id=message_id,
        )
        for at, sender_id, recipient_id, service, message_id, sender_name, recipient_name in rows
    ]
