"""The online-signing (网签) state machine of an employment agreement, as pure functions (no I/O).

The allowed steps are tabled in :func:`transition` (and held in :data:`TRANSITIONS`). Any other step
is refused with :class:`~gateway.errors.AgreementOutOfOrder` naming the state and the step; any step
but ``offer`` on an agreement that does not exist with :class:`~gateway.errors.AgreementUnknown`.

The validity period: an offer's ``ValidFrom``..``ValidUntil`` are calendar days in China time
(UTC+8), both inclusive. The graduate's answer (accept or refuse) is allowed only on one of those
days, judged by when the gateway received it; before or after, it is refused with
:class:`~gateway.errors.AgreementOfferExpired`. The state is checked first, so a second answer is out
of order even after the period ended. An offer whose period is empty (``ValidUntil`` before
``ValidFrom``) is out of order; an offer whose last day has already passed when it arrives is
expired. Expiry is not a stored state: an expired offer stays ``offered`` and can no longer be
answered; the employer offers again under a new AgreementId.

Cancellation is allowed only once the agreement is signed. While the university reviews an accepted
agreement there is nothing to cancel yet: the university rejects it in its review instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from gateway.clock import BEIJING, utc
from gateway.errors import AgreementOfferExpired, AgreementOutOfOrder, AgreementUnknown


class AgreementState(StrEnum):
    OFFERED = "offered"
    ACCEPTED = "accepted"
    REFUSED = "refused"
    SIGNED = "signed"
    REVIEW_REJECTED = "review_rejected"
    CANCELLATION_REQUESTED = "cancellation_requested"
    CANCELLED = "cancelled"


class Step(StrEnum):
    OFFER = "offer"
    ACCEPT = "accept"
    REFUSE = "refuse"
    APPROVE = "approve"
    REJECT = "reject"
    REQUEST_CANCELLATION = "request_cancellation"
    APPROVE_CANCELLATION = "approve_cancellation"
    REJECT_CANCELLATION = "reject_cancellation"


# Ended agreements: their AgreementId may be offered again (the row is reused, its key being unique).
ENDED = (AgreementState.REFUSED, AgreementState.REVIEW_REJECTED, AgreementState.CANCELLED)

TRANSITIONS: dict[tuple[AgreementState | None, Step], AgreementState] = {
    (None, Step.OFFER): AgreementState.OFFERED,
    **{(ended, Step.OFFER): AgreementState.OFFERED for ended in ENDED},
    (AgreementState.OFFERED, Step.ACCEPT): AgreementState.ACCEPTED,
    (AgreementState.OFFERED, Step.REFUSE): AgreementState.REFUSED,
    (AgreementState.ACCEPTED, Step.APPROVE): AgreementState.SIGNED,
    (AgreementState.ACCEPTED, Step.REJECT): AgreementState.REVIEW_REJECTED,
    (AgreementState.SIGNED, Step.REQUEST_CANCELLATION): AgreementState.CANCELLATION_REQUESTED,
    (AgreementState.CANCELLATION_REQUESTED, Step.APPROVE_CANCELLATION): AgreementState.CANCELLED,
    (AgreementState.CANCELLATION_REQUESTED, Step.REJECT_CANCELLATION): AgreementState.SIGNED,
}

RESPONSES = frozenset({Step.ACCEPT, Step.REFUSE})


def china_day(instant: datetime) -> date:
    """The calendar day in China (UTC+8) of ``instant`` (a naive value is taken to be UTC)."""
    return utc(instant).astimezone(BEIJING).date()


@dataclass(frozen=True)
class ValidityPeriod:
    """An offer's validity: the China-time days ``valid_from`` to ``valid_until``, both inclusive."""

    valid_from: date
    valid_until: date

    @property
    def empty(self) -> bool:
        return self.valid_until < self.valid_from

    def contains(self, instant: datetime) -> bool:
        return self.valid_from <= china_day(instant) <= self.valid_until

    def ended_before(self, instant: datetime) -> bool:
        return china_day(instant) > self.valid_until


def allowed_from(step: Step) -> list[AgreementState | None]:
    """The states in which ``step`` is allowed (None: no agreement yet)."""
    return [state for (state, s) in TRANSITIONS if s is step]


def transition(
    state: AgreementState | None,
    step: Step,
    period: ValidityPeriod,
    received_at: datetime,
    *,
    label: str = "the agreement",
) -> AgreementState:
    """The state after ``step``, taken at ``received_at`` by an agreement in ``state`` (None: none yet).

    ====================== ======================= ======================= ======================================
    state before           step                    state after             sent as
    ====================== ======================= ======================= ======================================
    (no agreement)         offer                   offered                 AgreementOffer
    refused                offer                   offered                 AgreementOffer (same id offered again)
    review_rejected        offer                   offered                 AgreementOffer (same id offered again)
    cancelled              offer                   offered                 AgreementOffer (same id offered again)
    offered                accept                  accepted                AgreementResponse ``accept``
    offered                refuse                  refused                 AgreementResponse ``refuse``
    accepted               approve                 signed                  AgreementReview ``approve``
    accepted               reject                  review_rejected         AgreementReview ``reject``
    signed                 request_cancellation    cancellation_requested  AgreementCancellation
    cancellation_requested approve_cancellation    cancelled               AgreementCancellationReview ``approve``
    cancellation_requested reject_cancellation     signed                  AgreementCancellationReview ``reject``
    ====================== ======================= ======================= ======================================

    ``period`` is the new offer's for ``offer`` and the stored offer's for every other step.
    ``label`` names the agreement in fault texts.

    Raises :class:`AgreementUnknown` for any step but ``offer`` when there is no agreement;
    :class:`AgreementOutOfOrder` when the step is not in the table above for ``state``, or a new
    offer's period is empty; :class:`AgreementOfferExpired` when a response falls outside the period
    or a new offer's period has already ended.
    """
    if state is None and step is not Step.OFFER:
        raise AgreementUnknown(f"{label} was never offered; {step} needs an offer first")
    new_state = TRANSITIONS.get((state, step))
    if new_state is None:
        raise AgreementOutOfOrder(f"{label} is {state}; {step} is allowed only {_when(allowed_from(step))}")
    if step is Step.OFFER:
        if period.empty:
            raise AgreementOutOfOrder(
                f"{label}: ValidUntil {period.valid_until} is before ValidFrom {period.valid_from}; "
                "the offer could never be answered"
            )
        if period.ended_before(received_at):
            raise AgreementOfferExpired(
                f"{label}: the offer's last valid day {period.valid_until} has passed "
                f"(received on {china_day(received_at)}, China time)"
            )
    if step in RESPONSES and not period.contains(received_at):
        side = "after its last day" if period.ended_before(received_at) else "before its first day"
        raise AgreementOfferExpired(
            f"{label}: the offer is valid from {period.valid_from} to {period.valid_until} (China time); "
            f"the graduate's {step} arrived on {china_day(received_at)}, {side}"
        )
    return new_state


def _when(states: list[AgreementState | None]) -> str:
    named = [str(s) for s in states if s is not None]
    listed = " or ".join([", ".join(named[:-1]), named[-1]] if len(named) > 1 else named)
    if None in states:
        return "when there is no agreement yet" + (f" or it is {listed}" if named else "")
    return f"when it is {listed}"
