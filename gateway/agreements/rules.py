"""The service rules of online signing: each message is one step of ``gateway.agreements.machine``.

- ``AgreementOffer`` (employer -> the graduate's university) creates the agreement, keyed by the
  employer and its AgreementId; the same id may be offered again only once the agreement has ended
  (refused, rejected in review, cancelled). The employer offers only in its own name
  (``Employer/CreditCode`` is the sender) and to the graduate's university (``Graduate/School`` is the
  recipient); otherwise :class:`AccessDenied`. The identity number is kept only as its keyed hash.
- ``AgreementResponse`` (the university, relaying the graduate, -> the employer): accept or refuse,
  for the graduate the offer names (the identity number must be given and match), within the
  validity period. (A graduate who answers in the portal has the gateway send the answer itself:
  ``gateway.graduates.offers``; that message does not pass the intake.)
- ``AgreementReview`` (university -> employer): approve (signed) or reject an accepted agreement.
- ``AgreementCancellation``: the employer (to the university, ``RequestedBy`` employer) or the
  university for the graduate (to the employer, ``RequestedBy`` graduate) asks to cancel a signed one.
- ``AgreementCancellationReview`` (university -> employer): approve (cancelled) or reject (signed again).

Every message after the offer names its agreement by AgreementId between the same employer and
university; one the gateway never saw is :class:`AgreementUnknown`. ``check`` refuses before anything
is stored; ``apply`` makes the same transition and records it.

Races between concurrent messages are decided by the database: a step is an ``UPDATE`` conditional
on the state it was checked against, and a new agreement an insert under its unique key, so of two
messages that step one agreement at once (an approval and a rejection, say) the second is refused
``AGREEMENT_OUT_OF_ORDER`` instead of overwriting the first. The statements are Core, built once,
and read only the columns the rules need (issue 13); an ``Agreement`` the session already holds is
expired after a step.
"""

from __future__ import annotations

from datetime import date
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.access.rules import a_kind
from gateway.agreements.machine import AgreementState, Step, ValidityPeriod, transition
from gateway.agreements.models import Agreement
from gateway.domain.documents import day, instant, required, text
from gateway.domain.message import DomainMessage
from gateway.errors import AccessDenied, AgreementOutOfOrder, AgreementUnknown
from gateway.notices.record import notify
from gateway.registry.models import ParticipantKind
from gateway.store.db import expire_held

RESPONSE_STEPS = {"accept": Step.ACCEPT, "refuse": Step.REFUSE}
REVIEW_STEPS = {"approve": Step.APPROVE, "reject": Step.REJECT}
CANCELLATION_REVIEW_STEPS = {"approve": Step.APPROVE_CANCELLATION, "reject": Step.REJECT_CANCELLATION}

_A = cast(Table, Agreement.__table__)
_READ = select(
    _A.c.id, _A.c.agreement_id, _A.c.employer_id, _A.c.identity_hash, _A.c.state, _A.c.valid_from, _A.c.valid_until
)
_OFFERED_BY = _READ.where(_A.c.employer_id == bindparam("employer"), _A.c.agreement_id == bindparam("agreement"))
_BETWEEN = _OFFERED_BY.where(_A.c.university_id == bindparam("university"))
_INSERT = insert(_A)
# The columns a step sets are the parameters named after them (an offer made again sets them all).
_STEP = update(_A).where(_A.c.id == bindparam("pk"), _A.c.state == bindparam("checked_state"))


class _Stored(NamedTuple):
    """What the rules read of a stored agreement."""

    pk: int
    agreement_id: str
    employer_id: str
    identity_hash: str
    state: str
    valid_from: date
    valid_until: date


def _label(agreement_id: str, employer_id: str) -> str:
    return f"agreement {agreement_id} of employer {employer_id}"


def _find(session: Session, agreement_id: str, employer_id: str, university_id: str) -> _Stored:
    row = session.execute(
        _BETWEEN, {"agreement": agreement_id, "employer": employer_id, "university": university_id}
    ).one_or_none()
    if row is None:
        raise AgreementUnknown(
            f"{_label(agreement_id, employer_id)} was never offered through university {university_id}"
        )
    return _Stored(*row)


def _advance(record: _Stored, step: Step, message: DomainMessage) -> AgreementState:
    return transition(
        AgreementState(record.state),
        step,
        ValidityPeriod(record.valid_from, record.valid_until),
        message.received_at,
        label=_label(record.agreement_id, record.employer_id),
    )


def _record(session: Session, record: _Stored, state: AgreementState, message: DomainMessage, **values: Any) -> None:
    """Write ``state`` (and ``values``) if the agreement is still in the state the step was checked
    against; raises :class:`AgreementOutOfOrder` when another message stepped it first."""
    moved = cast(
        CursorResult[Any],
        session.execute(
            _STEP,
            {
                "pk": record.pk,
                "checked_state": record.state,
                "state": state.value,
                "updated_at": message.received_at,
                **values,
            },
        ),
    )
    if moved.rowcount != 1:
        raise AgreementOutOfOrder(
            f"{_label(record.agreement_id, record.employer_id)} is no longer {record.state}: "
            "another message stepped it at the same moment"
        )
    expire_held(session, Agreement, record.pk)


# --- the offer -------------------------------------------------------------------------------------


class AgreementOfferRules:
    def check(self, message: DomainMessage, session: Session) -> None:
        self._offer(message, session)

    def apply(self, message: DomainMessage, session: Session) -> None:
        record, state = self._offer(message, session)
        doc = message.document
        agreement_id = required(doc, "agr:AgreementId")
        offer: dict[str, Any] = {
            "university_id": message.recipient.id,
            "identity_hash": message.hasher(required(doc, "agr:Graduate/agr:IdentityNumber")),
            "graduate_name": required(doc, "agr:Graduate/agr:Name"),
            "position": required(doc, "agr:Position"),
            "work_region": required(doc, "agr:WorkRegion"),
            "valid_from": day(doc, "agr:ValidFrom"),
            "valid_until": day(doc, "agr:ValidUntil"),
            "cancellation_requested_by": None,
            "offered_at": instant(doc, "agr:OfferedAt"),
        }
        if record is not None:  # an ended agreement offered again: its row is reused
            _record(session, record, state, message, **offer)
        else:
            new = {"agreement_id": agreement_id, "employer_id": message.sender.id, "state": state.value}
            try:
                session.execute(_INSERT, {**new, "updated_at": message.received_at, **offer})
            except IntegrityError:
                raise AgreementOutOfOrder(
                    f"{_label(agreement_id, message.sender.id)} was offered by another message at the same moment"
                ) from None
        notify(
            session,
            "offer_arrived",
            message.received_at,
            identity_hash=offer["identity_hash"],
            message_id=message.message_id,
            facts={
                "agreement_id": agreement_id,
                "employer": message.sender.id,
                "position": offer["position"],
                "valid_until": offer["valid_until"].isoformat(),
            },
        )

    @staticmethod
    def _offer(message: DomainMessage, session: Session) -> tuple[_Stored | None, AgreementState]:
        doc = message.document
        agreement_id = required(doc, "agr:AgreementId")
        employer = required(doc, "agr:Employer/c:CreditCode")
        if employer != message.sender.id:
            raise AccessDenied(
                f"the offer names employer {employer} but {message.sender.id} sends it: "
                "an employer offers only in its own name"
            )
        school = required(doc, "agr:Graduate/agr:School")
        if school != message.recipient.id:
            raise AccessDenied(
                f"the graduate's university is {school} but the offer is sent to "
                f"{message.recipient.id}: an offer goes to the graduate's university"
            )
        row = session.execute(_OFFERED_BY, {"employer": message.sender.id, "agreement": agreement_id}).one_or_none()
        record = _Stored(*row) if row is not None else None
        state = transition(
            AgreementState(record.state) if record is not None else None,
            Step.OFFER,
            ValidityPeriod(day(doc, "agr:ValidFrom"), day(doc, "agr:ValidUntil")),
            message.received_at,
            label=_label(agreement_id, message.sender.id),
        )
        return record, state


# --- the university's messages to the employer -------------------------------------------------


def _from_university(message: DomainMessage, session: Session) -> _Stored:
    """The agreement named in a message the graduate's university sends to the employer."""
    return _find(session, required(message.document, "agr:AgreementId"), message.recipient.id, message.sender.id)


class AgreementResponseRules:
    def check(self, message: DomainMessage, session: Session) -> None:
        self._respond(message, session)

    def apply(self, message: DomainMessage, session: Session) -> None:
        _record(session, *self._respond(message, session), message)

    @staticmethod
    def _respond(message: DomainMessage, session: Session) -> tuple[_Stored, AgreementState]:
        record = _from_university(message, session)
        employer = text(message.document, "agr:Employer")
        if employer is not None and employer != message.recipient.id:
            raise AccessDenied(f"the answer names employer {employer} but is sent to {message.recipient.id}")
        number = text(message.document, "agr:IdentityNumber")
        if number is None:
            raise AgreementUnknown(
                f"{_label(record.agreement_id, record.employer_id)}: a university relaying the graduate's answer "
                "names the graduate by IdentityNumber"
            )
        if record.identity_hash != message.hasher(number):
            raise AgreementUnknown(f"{_label(record.agreement_id, record.employer_id)} was offered to another graduate")
        step = RESPONSE_STEPS[required(message.document, "agr:Decision")]
        return record, _advance(record, step, message)


class AgreementReviewRules:
    def check(self, message: DomainMessage, session: Session) -> None:
        self._review(message, session)

    def apply(self, message: DomainMessage, session: Session) -> None:
        _record(session, *self._review(message, session), message)

    @staticmethod
    def _review(message: DomainMessage, session: Session) -> tuple[_Stored, AgreementState]:
        record = _from_university(message, session)
        step = REVIEW_STEPS[required(message.document, "agr:Decision")]
        return record, _advance(record, step, message)


class AgreementCancellationReviewRules:
    def check(self, message: DomainMessage, session: Session) -> None:
        self._review(message, session)

    def apply(self, message: DomainMessage, session: Session) -> None:
        record, state = self._review(message, session)
        if state is AgreementState.SIGNED:  # rejected: no cancellation is pending any more
            _record(session, record, state, message, cancellation_requested_by=None)
        else:
            _record(session, record, state, message)

    @staticmethod
    def _review(message: DomainMessage, session: Session) -> tuple[_Stored, AgreementState]:
        record = _from_university(message, session)
        step = CANCELLATION_REVIEW_STEPS[required(message.document, "agr:Decision")]
        return record, _advance(record, step, message)


# --- cancellation, from either side ----------------------------------------------------------------


class AgreementCancellationRules:
    def check(self, message: DomainMessage, session: Session) -> None:
        self._request(message, session)

    def apply(self, message: DomainMessage, session: Session) -> None:
        record, state = self._request(message, session)
        _record(
            session, record, state, message, cancellation_requested_by=required(message.document, "agr:RequestedBy")
        )

    @staticmethod
    def _request(message: DomainMessage, session: Session) -> tuple[_Stored, AgreementState]:
        requested_by = required(message.document, "agr:RequestedBy")
        agreement_id = required(message.document, "agr:AgreementId")
        sender, recipient = message.sender, message.recipient
        # Each party speaks only for itself: the employer for the employer, the university for the graduate.
        if sender.kind == ParticipantKind.EMPLOYER:
            speaks_for, employer_id, university_id = "employer", sender.id, recipient.id
        elif sender.kind == ParticipantKind.UNIVERSITY:
            speaks_for, employer_id, university_id = "graduate", recipient.id, sender.id
        else:
            raise AccessDenied(f"{a_kind(sender.kind)} cannot request the cancellation of an employment agreement")
        if requested_by != speaks_for:
            raise AccessDenied(
                f"{sender.id} ({sender.kind}) may send only cancellations requested by the {speaks_for}, "
                f"not by the {requested_by}"
            )
        record = _find(session, agreement_id, employer_id, university_id)
        return record, _advance(record, Step.REQUEST_CANCELLATION, message)
