"""Recipient resolution: a participant id, or a role walked county -> city -> province.

Each test runs on both directories: the tables read directly (``SqlDirectory``) and the registry
snapshot's view that the intake resolves through, loaded in the test's transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session

from gateway.errors import RecipientDisabled, UnknownRecipient
from gateway.intake.envelope import Recipient
from gateway.registry.directory import SqlDirectory
from gateway.registry.services import set_enabled
from gateway.registry.snapshot import RegistrySnapshot
from gateway.routing.resolve import Directory, resolve_recipient
from tests.conftest import AGENCY_BEIJING, AGENCY_CHAOYANG, AGENCY_PUDONG, EDUCATION_DEPARTMENT

NOW = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture(params=["sql", "snapshot"])
def directory(request: pytest.FixtureRequest) -> Callable[[Session], Directory]:
    """The directory over ``session``, as it stands now (the snapshot refreshed in its transaction)."""
    if request.param == "sql":
        return SqlDirectory
    snapshot = RegistrySnapshot()
    return snapshot.refresh


@pytest.mark.parametrize(
    ("role", "region", "expected"),
    [
        ("talent_service_agency", "110105", AGENCY_CHAOYANG),  # the county's own agency
        ("talent_service_agency", "110108", AGENCY_BEIJING),  # no county or city agency: the province's
        ("talent_service_agency", "110000", AGENCY_BEIJING),
        ("talent_service_agency", "310115", AGENCY_PUDONG),
        ("education_department", "110105", EDUCATION_DEPARTMENT),  # sits in 110000, declares no regions
    ],
)
def test_walk_finds_the_nearest_responsible_participant(
    session: Session, directory: Callable[[Session], Directory], role: str, region: str, expected: str
) -> None:
    assert resolve_recipient(Recipient(role=role, region=region), directory(session)).id == expected


def test_a_disabled_county_agency_is_refused_not_replaced_by_the_one_above(
    session: Session, directory: Callable[[Session], Directory]
) -> None:
    set_enabled(session, AGENCY_CHAOYANG, False, NOW)
    with pytest.raises(RecipientDisabled, match=AGENCY_CHAOYANG):
        resolve_recipient(Recipient(role="talent_service_agency", region="110105"), directory(session))


def test_only_disabled_participants_is_its_own_refusal(
    session: Session, directory: Callable[[Session], Directory]
) -> None:
    set_enabled(session, AGENCY_PUDONG, False, NOW)
    with pytest.raises(RecipientDisabled):
        resolve_recipient(Recipient(role="talent_service_agency", region="310115"), directory(session))
    with pytest.raises(RecipientDisabled):
        resolve_recipient(Recipient(participant=AGENCY_PUDONG), directory(session))


def test_nobody_responsible(session: Session, directory: Callable[[Session], Directory]) -> None:
    with pytest.raises(UnknownRecipient):
        resolve_recipient(Recipient(role="talent_service_agency", region="440305"), directory(session))
    with pytest.raises(UnknownRecipient):
        resolve_recipient(Recipient(participant="91110000600037341L"), directory(session))
