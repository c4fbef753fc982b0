"""Two messages stepping one agreement at once, on the real PostgreSQL: the database decides.

Both are checked in their own transactions (neither sees the other's uncommitted work); the first
is applied and committed while the second's write waits on it, and the second is refused
``AGREEMENT_OUT_OF_ORDER`` instead of overwriting the first (``tests/archives/test_races.py`` does
the same for archive transfers and registrations).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.agreements.models import Agreement
from gateway.agreements.rules import AgreementOfferRules, AgreementResponseRules, AgreementReviewRules
from gateway.errors import AgreementOutOfOrder
from gateway.settings import Settings
from gateway.store.db import transaction
from tests.archives.test_races import accept, pg, race  # noqa: F401 (pg: the fixture)
from tests.conftest import PRIVATE_EMPLOYER, UNIVERSITY, example


def document(name: str, agreement_id: str, **values: str) -> bytes:
    """The example ``name`` about ``agreement_id``, valid around the races' clock (2026-07-01)."""
    data = re.sub(rb"AGR-2025-000123", agreement_id.encode(), example(name))
    for tag, value in {"ValidFrom": "2026-06-01", "ValidUntil": "2026-07-31", **values}.items():
        data = re.sub(rf"<agr:{tag}>[^<]*</agr:{tag}>".encode(), f"<agr:{tag}>{value}</agr:{tag}>".encode(), data)
    return data


def state(sessions: Callable[[], Session], agreement_id: str) -> str:
    with transaction(sessions) as session:  # type: ignore[arg-type]
        return session.scalars(select(Agreement.state).where(Agreement.agreement_id == agreement_id)).one()


def test_an_approval_and_a_rejection_at_once_step_the_agreement_once(
    pg: Callable[[], Session],  # noqa: F811
    settings: Settings,
) -> None:
    offer = document("agreement-offer", "AGR-RACE-1")
    accept(pg, settings, AgreementOfferRules(), "AgreementOffer", offer, PRIVATE_EMPLOYER, UNIVERSITY)
    response = document("agreement-response", "AGR-RACE-1")
    accept(pg, settings, AgreementResponseRules(), "AgreementResponse", response, UNIVERSITY, PRIVATE_EMPLOYER)
    approve = document("agreement-review", "AGR-RACE-1")
    reject = document("agreement-review", "AGR-RACE-1", Decision="reject")
    raised = race(
        pg, settings, AgreementReviewRules(), "AgreementReview", approve, reject, UNIVERSITY, PRIVATE_EMPLOYER
    )
    assert isinstance(raised, AgreementOutOfOrder), raised
    assert "no longer accepted" in str(raised)
    assert state(pg, "AGR-RACE-1") == "signed"


def test_two_offers_of_one_new_agreement_at_once_make_one(
    pg: Callable[[], Session],  # noqa: F811
    settings: Settings,
) -> None:
    first = document("agreement-offer", "AGR-RACE-2")
    second = document("agreement-offer", "AGR-RACE-2", Position="另一个职位")
    raised = race(pg, settings, AgreementOfferRules(), "AgreementOffer", first, second, PRIVATE_EMPLOYER, UNIVERSITY)
    assert isinstance(raised, AgreementOutOfOrder), raised
    with transaction(pg) as session:  # type: ignore[arg-type]
        assert session.scalars(select(Agreement.position).where(Agreement.agreement_id == "AGR-RACE-2")).all() == [
            "软件开发工程师"
        ]
