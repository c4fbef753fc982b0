"""The online-signing state machine on its own: every allowed step, forbidden ones, the validity days."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time

import pytest

from gateway.agreements.machine import AgreementState, Step, ValidityPeriod, china_day, transition
from gateway.clock import BEIJING
from gateway.errors import AgreementOfferExpired, AgreementOutOfOrder, AgreementUnknown

S = AgreementState
PERIOD = ValidityPeriod(date(2025, 4, 1), date(2025, 4, 30))
DURING = datetime(2025, 4, 10, 9, 0, tzinfo=BEIJING)

# Written out again here (not read from the module) so that a change to the table shows up as a failure.
ALLOWED: dict[tuple[AgreementState | None, Step], AgreementState] = {
    (None, Step.OFFER): S.OFFERED,
    (S.REFUSED, Step.OFFER): S.OFFERED,
    (S.REVIEW_REJECTED, Step.OFFER): S.OFFERED,
    (S.CANCELLED, Step.OFFER): S.OFFERED,
    (S.OFFERED, Step.ACCEPT): S.ACCEPTED,
    (S.OFFERED, Step.REFUSE): S.REFUSED,
    (S.ACCEPTED, Step.APPROVE): S.SIGNED,
    (S.ACCEPTED, Step.REJECT): S.REVIEW_REJECTED,
    (S.SIGNED, Step.REQUEST_CANCELLATION): S.CANCELLATION_REQUESTED,
    (S.CANCELLATION_REQUESTED, Step.APPROVE_CANCELLATION): S.CANCELLED,
    (S.CANCELLATION_REQUESTED, Step.REJECT_CANCELLATION): S.SIGNED,
}
FORBIDDEN = [
    (state, step) for state, step in itertools.product([*AgreementState], [*Step]) if (state, step) not in ALLOWED
]


def at_china(day: date, clock: time) -> datetime:
    return datetime.combine(day, clock, tzinfo=BEIJING)


@pytest.mark.parametrize(("state", "step", "after"), [(k[0], k[1], v) for k, v in ALLOWED.items()], ids=str)
def test_every_allowed_step(state: AgreementState | None, step: Step, after: AgreementState) -> None:
    assert transition(state, step, PERIOD, DURING) is after


@pytest.mark.parametrize(("state", "step"), FORBIDDEN, ids=str)
def test_every_other_step_is_out_of_order_and_names_state_and_step(state: AgreementState, step: Step) -> None:
    with pytest.raises(AgreementOutOfOrder) as refused:
        transition(state, step, PERIOD, DURING, label="agreement A-1")
    assert f"agreement A-1 is {state}" in refused.value.message
    assert str(step) in refused.value.message


@pytest.mark.parametrize("step", [s for s in Step if s is not Step.OFFER], ids=str)
def test_any_step_but_an_offer_needs_an_agreement(step: Step) -> None:
    with pytest.raises(AgreementUnknown):
        transition(None, step, PERIOD, DURING)


@pytest.mark.parametrize(
    ("state", "step"),
    [
        (S.OFFERED, Step.OFFER),  # the same id offered twice
        (S.OFFERED, Step.APPROVE),  # review before the graduate accepted
        (S.ACCEPTED, Step.ACCEPT),  # a second answer
        (S.REFUSED, Step.ACCEPT),
        (S.ACCEPTED, Step.REQUEST_CANCELLATION),  # under review: nothing signed to cancel yet
        (S.SIGNED, Step.APPROVE_CANCELLATION),  # cancellation review without a request
        (S.CANCELLED, Step.REQUEST_CANCELLATION),
    ],
    ids=str,
)
def test_forbidden_steps_the_flow_meets(state: AgreementState, step: Step) -> None:
    assert (state, step) in FORBIDDEN
    with pytest.raises(AgreementOutOfOrder):
        transition(state, step, PERIOD, DURING)


@pytest.mark.parametrize("step", [Step.ACCEPT, Step.REFUSE], ids=str)
@pytest.mark.parametrize(
    ("received_at", "allowed"),
    [
        (at_china(date(2025, 3, 31), time(23, 59, 59)), False),  # the day before ValidFrom
        (at_china(date(2025, 4, 1), time(0, 0)), True),  # the first valid day
        (at_china(date(2025, 4, 30), time(23, 59, 59)), True),  # the last valid day
        (at_china(date(2025, 5, 1), time(0, 0)), False),  # the day after ValidUntil
        (datetime(2025, 3, 31, 16, 0, tzinfo=UTC), True),  # 00:00 on 1 April in China
        (datetime(2025, 4, 30, 15, 59, 59, tzinfo=UTC), True),  # 23:59:59 on 30 April in China
        (datetime(2025, 4, 30, 16, 0, tzinfo=UTC), False),  # still 30 April in UTC, 1 May in China
        (datetime(2025, 4, 30, 16, 0), False),  # a naive instant is UTC
    ],
)
def test_the_graduate_answers_only_on_a_valid_day_in_china_time(
    step: Step, received_at: datetime, allowed: bool
) -> None:
    if allowed:
        assert transition(S.OFFERED, step, PERIOD, received_at) in (S.ACCEPTED, S.REFUSED)
    else:
        with pytest.raises(AgreementOfferExpired) as refused:
            transition(S.OFFERED, step, PERIOD, received_at)
        assert "2025-04-01 to 2025-04-30" in refused.value.message


def test_a_one_day_offer_is_valid_on_that_day_only() -> None:
    period = ValidityPeriod(date(2025, 4, 1), date(2025, 4, 1))
    assert transition(S.OFFERED, Step.ACCEPT, period, at_china(date(2025, 4, 1), time(12))) is S.ACCEPTED
    with pytest.raises(AgreementOfferExpired):
        transition(S.OFFERED, Step.ACCEPT, period, at_china(date(2025, 4, 2), time(0)))


def test_the_state_is_checked_before_the_period() -> None:
    with pytest.raises(AgreementOutOfOrder):
        transition(S.ACCEPTED, Step.ACCEPT, PERIOD, at_china(date(2025, 6, 1), time(12)))


def test_the_period_does_not_limit_the_later_steps() -> None:
    later = at_china(date(2025, 6, 1), time(12))
    assert transition(S.ACCEPTED, Step.APPROVE, PERIOD, later) is S.SIGNED
    assert transition(S.SIGNED, Step.REQUEST_CANCELLATION, PERIOD, later) is S.CANCELLATION_REQUESTED


def test_an_offer_with_an_empty_period_is_out_of_order() -> None:
    with pytest.raises(AgreementOutOfOrder, match="ValidUntil 2025-03-31 is before ValidFrom 2025-04-01"):
        transition(None, Step.OFFER, ValidityPeriod(date(2025, 4, 1), date(2025, 3, 31)), DURING)


def test_an_offer_whose_last_day_has_passed_is_expired_but_a_future_one_is_not() -> None:
    with pytest.raises(AgreementOfferExpired):
        transition(None, Step.OFFER, PERIOD, at_china(date(2025, 5, 1), time(0)))
    assert transition(None, Step.OFFER, PERIOD, at_china(date(2025, 4, 30), time(23, 59))) is S.OFFERED
    assert transition(None, Step.OFFER, PERIOD, at_china(date(2025, 3, 1), time(9))) is S.OFFERED


def test_china_day() -> None:
    assert china_day(datetime(2025, 4, 30, 15, 59, tzinfo=UTC)) == date(2025, 4, 30)
    assert china_day(datetime(2025, 4, 30, 16, 0, tzinfo=UTC)) == date(2025, 5, 1)
