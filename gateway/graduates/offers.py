"""Employment agreement offers in the portal: the graduate sees theirs and accepts or declines.

An answer is one step of the online-signing state machine (``gateway.agreements.machine``), taken
at once in the database (a conditional UPDATE, so that two answers given at the same moment
cannot both count), and the gateway sends it on as an ``AgreementResponse`` to the university,
which reviews it next, and to the employer, who made the offer: two messages the gateway signs
and delivers like any other (``gateway.delivery.originate``), in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime

from lxml import etree
from lxml.builder import ElementMaker
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.agreements.machine import AgreementState, Step, ValidityPeriod, transition
from gateway.agreements.models import Agreement
from gateway.delivery.originate import Originator, enqueue_after_commit
from gateway.errors import AgreementOfferExpired, AgreementOutOfOrder, AgreementUnknown, OfferResponseRefused
from gateway.graduates.models import GraduateAccount, MessageSubject
from gateway.messages.models import DeliveryStatus
from gateway.registry.models import DeliveryMode, Participant

AGR_NS = "urn:gradex:agreement:1"
_AGR = ElementMaker(namespace=AGR_NS, nsmap={"agr": AGR_NS})


@dataclass(frozen=True)
class Offer:
    """An offer made to the graduate and not answered yet; ``answerable`` while its period runs."""

    agreement_pk: int
    agreement_id: str
    employer_id: str
    employer_name: str
    university_id: str
    university_name: str
    position: str
    work_region: str
    valid_from: date
    valid_until: date
    offered_at: datetime
    answerable: bool


@dataclass(frozen=True)
class OfferAnswer:
    """The agreement's state after the answer, and the messages sent (to the university, to the employer)."""

    state: AgreementState
    message_ids: tuple[str, ...]


def offers(session: Session, account: GraduateAccount, now: datetime) -> list[Offer]:
    """The graduate's offers awaiting an answer, newest first (an expired one stays listed, not answerable)."""
    rows = session.scalars(
        select(Agreement)
        .where(Agreement.identity_hash == account.identity_hash, Agreement.state == AgreementState.OFFERED.value)
        .order_by(Agreement.offered_at.desc(), Agreement.id.desc())
    )
    found = []
    for record in rows:
        employer = session.get(Participant, record.employer_id)
        university = session.get(Participant, record.university_id)
        found.append(
            Offer(
                agreement_pk=record.id,
                agreement_id=record.agreement_id,
                employer_id=record.employer_id,
                employer_name=employer.name if employer else record.employer_id,
                university_id=record.university_id,
                university_name=university.name if university else record.university_id,
                position=record.position,
                work_region=record.work_region,
                valid_from=record.valid_from,
                valid_until=record.valid_until,
                offered_at=record.offered_at,
                answerable=ValidityPeriod(record.valid_from, record.valid_until).contains(now),
            )
        )
    return found


def respond_to_offer(
    session: Session,
    originator: Originator,
    account: GraduateAccount,
    agreement_pk: int,
    accept: bool,
    now: datetime,
    enqueue: Callable[[list[int], Mapping[int, str]], None] | None = None,
) -> OfferAnswer:
    """Accept (or decline) the offer ``agreement_pk`` for the graduate and send the answer on.

    ``enqueue`` (``gateway().delivery.enqueue``) hands push deliveries to the broker once the
    transaction commits; without it the outbox sweep sends them. Raises
    :class:`OfferResponseRefused` with code ``not_found`` (no such offer to this graduate),
    ``already_answered`` (or otherwise no longer an open offer), ``expired`` or ``not_yet_valid``.
    """
    record = session.get(Agreement, agreement_pk)
    if record is None or record.identity_hash != account.identity_hash:
        raise OfferResponseRefused("not_found", "There is no such offer among yours.")
    period = ValidityPeriod(record.valid_from, record.valid_until)
    step = Step.ACCEPT if accept else Step.REFUSE
    try:
        state = transition(AgreementState(record.state), step, period, now)
    except (AgreementOutOfOrder, AgreementUnknown):
        raise OfferResponseRefused("already_answered", "This offer has already been answered.") from None
    except AgreementOfferExpired:
        code = "expired" if period.ended_before(now) else "not_yet_valid"
        raise OfferResponseRefused(
            code,
            f"This offer can be answered from {record.valid_from} to {record.valid_until} (China time) only.",
        ) from None
    taken = session.execute(
        update(Agreement)
        .where(Agreement.id == record.id, Agreement.state == AgreementState.OFFERED.value)
        .values(state=state.value, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        raise OfferResponseRefused("already_answered", "This offer has already been answered.")
    session.expire(record)
    document = answer_document(record.agreement_id, record.employer_id, step, now)
    sent = []
    push: dict[int, str] = {}  # delivery id: recipient id
    for recipient_id in (record.university_id, record.employer_id):
        recipient = session.get(Participant, recipient_id)
        assert recipient is not None  # agreements refer to registered participants
        message = originator.send(
            session,
            document,
            "AgreementResponse",
            recipient,
            now,
            correlation_id=record.agreement_id,
            on_behalf_of=f"graduate account {account.id}",
        )
        session.add(MessageSubject(message_pk=message.id, identity_hash=account.identity_hash))
        sent.append(message.message_id)
        push |= {
            d.id: d.recipient_id
            for d in message.deliveries
            if d.mode == DeliveryMode.PUSH and d.status == DeliveryStatus.ACCEPTED
        }
    if enqueue is not None:
        enqueue_after_commit(session, push, enqueue)
    return OfferAnswer(state, tuple(sent))


def answer_document(agreement_id: str, employer_id: str, step: Step, now: datetime) -> etree._Element:
    """The ``agr:AgreementResponse`` the platform sends: the employer named, no identity number."""
    element: etree._Element = _AGR.AgreementResponse(
        _AGR.AgreementId(agreement_id),
        _AGR.Employer(employer_id),
        _AGR.Decision("accept" if step is Step.ACCEPT else "refuse"),
        _AGR.RespondedAt(now.isoformat().replace("+00:00", "Z")),
    )
    return element
