"""Synthetic graduates: valid, varied, the same for the same seed, and routable by the gateway's own rules."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from stdnum.cn import ric

from agencies.records import (
    ARCHIVE_HELD,
    IN_THE_PORTAL,
    MISHAPS,
    PARCEL_LOST,
    PORTAL_PAGES,
    PORTAL_SERVICES,
    SHORT_CODE,
    TOKEN,
    Graduate,
)
from gateway.access.rules import load_rules
from gateway.archives.rules import RegistrationFacts, allowed_receivers
from gateway.archives.services import RegistryAgencies
from gateway.codes.credit_code import is_credit_code
from gateway.codes.lists import code_list
from gateway.codes.regions import lookup_region
from gateway.demo.cast import Cast, load_cast
from gateway.demo.graduates import make_graduates, minimum_graduates
from gateway.grants.scope import FACTS, MAX_USES, MAX_VALID_DAYS, PURPOSES
from gateway.registry.directory import SqlDirectory
from gateway.registry.models import Participant
from gateway.registry.services import add_participant
from gateway.settings import Settings
from gateway.store.db import connect, session_factory, transaction


@pytest.fixture(scope="module")
def cast() -> Cast:
    return load_cast()


@pytest.fixture(scope="module")
def season(cast: Cast) -> list[Graduate]:
    return make_graduates(cast, 200, seed=2026, year=2026)


def test_the_same_seed_gives_the_same_graduates_and_another_seed_others(cast: Cast, season: list[Graduate]) -> None:
    assert make_graduates(cast, 200, seed=2026, year=2026) == season
    other = make_graduates(cast, 200, seed=2027, year=2026)
    assert {g.identity_number for g in other}.isdisjoint({g.identity_number for g in season[len(cast.data["story"]) :]})


def test_identity_numbers_are_valid_unique_and_born_before_graduation(season: list[Graduate]) -> None:
    numbers = [g.identity_number for g in season]
    assert len(set(numbers)) == len(numbers)
    for graduate in season:
        assert ric.is_valid(graduate.identity_number), graduate.index
        born = ric.get_birth_date(graduate.identity_number)
        assert 17 <= graduate.graduation_date.year - born.year <= 30
        assert 2 <= len(graduate.name) <= 4


def test_every_destination_code_occurs_once_the_season_is_large_enough(cast: Cast) -> None:
    codes = set(code_list("destination-codes"))
    told = {spec["destination"] for spec in cast.data["story"]}
    enough = len(cast.data["story"]) + len(codes - told)
    assert {g.destination_code for g in make_graduates(cast, enough, seed=5, year=2026)} == codes


def test_the_stories_come_first_and_every_mishap_is_told(cast: Cast) -> None:
    graduates = make_graduates(cast, minimum_graduates(), seed=99, year=2026)
    assert len(graduates) == len(cast.data["story"])
    assert [g.destination_code for g in graduates] == [spec["destination"] for spec in cast.data["story"]]
    told = Counter(m for g in graduates for m in g.mishaps)
    assert set(told) == MISHAPS
    assert any(o.expired_first for g in graduates for o in g.offers)
    assert any(o.cancelled for g in graduates for o in g.offers)
    assert any(g.targeted_unit is not None for g in graduates)
    assert any(g.admitting_institution is not None for g in graduates)
    late = [g for g in graduates if g.leaves_late]
    assert late and all(ARCHIVE_HELD in g.mishaps for g in late)  # the late leaver's held archive: not yet overdue
    assert sum(1 for g in graduates if {ARCHIVE_HELD, PARCEL_LOST} & g.mishaps) == 3


def test_the_season_is_varied(season: list[Graduate]) -> None:
    assert len({g.archive_receiver.credit_code for g in season}) >= 8
    assert len({g.household_region[:2] for g in season}) == 4
    assert Counter(g.education_level for g in season).keys() >= {"bachelor", "master"}
    assert sum(g.leaves_late for g in season) >= 2
    assert sum(g.confidential_documents > 0 for g in season) == len(season)
    assert {g.dispatch_method for g in season} == {"confidential_communication", "special_personnel"}
    assert {g.archive_initiative for g in season} == {"receiver-requests", "university-dispatches"}


def test_codes_in_the_graduates_records_are_valid(season: list[Graduate]) -> None:
    for graduate in season:
        region = lookup_region(graduate.household_region)
        assert region is not None and not region.withdrawn
        for organisation in (graduate.employer, graduate.archive_receiver, graduate.targeted_unit):
            if organisation is not None:
                assert is_credit_code(organisation.credit_code)
        if graduate.destination_code in ("10", "11"):
            assert graduate.contract_reference is not None
        accepted = [o for o in graduate.offers if o.decision == "accept" and not o.cancelled]
        if graduate.destination_code == "10":
            assert [o.agreement_id for o in accepted] == [graduate.contract_reference]


def test_the_registry_and_the_archive_rules_agree_with_every_receiver(
    settings: Settings, cast: Cast, season: list[Graduate]
) -> None:
    """The gateway's registry (the cast registered as the demo registers it) allows each graduate's receiver."""
    engine = connect(settings.database_url)
    try:
        with transaction(session_factory(engine)) as session:
            for member in cast.members.values():
                if session.get(Participant, member.id) is None:
                    pulled = replace(member.participant, delivery_mode="pull", endpoint_url=None)
                    add_participant(session, pulled, datetime.now(UTC))
            directory = RegistryAgencies(SqlDirectory(session))
            natures = code_list("unit-nature-codes")
            destinations = code_list("destination-codes")
            first = [g.registered_first_as for g in season if g.registered_first_as is not None]
            assert first  # the story's graduate registered before the job came
            for g in [*season, *first]:
                row = destinations[g.destination_code]
                facts = RegistrationFacts(
                    destination_code=g.destination_code,
                    destination_parent=row["parent"] or None,
                    destination_category=row["category"],
                    household_region=g.household_region,
                    archive_receiver_choice=g.archive_receiver_choice,
                    archive_receiver_id=g.archive_receiver.credit_code,
                    employer_id=g.employer.credit_code if g.employer else None,
                    employer_unit_nature=g.employer.unit_nature if g.employer else None,
                    employer_keeps_archive=bool(
                        g.employer and natures[g.employer.unit_nature or ""]["archive_to_employer"] == "yes"
                    ),
                    employer_region=g.employer.region if g.employer else None,
                    targeted_unit_id=g.targeted_unit.credit_code if g.targeted_unit else None,
                    admitting_institution_id=g.admitting_institution.credit_code if g.admitting_institution else None,
                )
                refusal = allowed_receivers(facts, directory).refusal(g.archive_receiver.credit_code)
                assert refusal is None, f"graduate {g.index}: {refusal}"
    finally:
        engine.dispose()


def test_the_stories_tell_the_portal_and_the_authorisations(cast: Cast) -> None:
    graduates = make_graduates(cast, minimum_graduates(), seed=99, year=2026)
    plans = [g.authorisation for g in graduates if g.authorisation is not None]
    assert sum(p.revokes for p in plans) == 1 and sum(p.used_twice for p in plans) == 1
    assert sum(p.asks_beyond is not None for p in plans) == 1
    assert {p.hand_over for p in plans} == {TOKEN, SHORT_CODE}
    assert {p.verifier.kind for p in plans} == {"household_registration_office", "employer", "talent_service_agency"}
    # The pages are rate limited per client address (10 a minute): a few graduates, leaving room to sign in.
    pages = [g for g in graduates if g.portal == PORTAL_PAGES]
    assert 1 <= len(pages) <= 5
    assert {g.portal for g in graduates if g.authorisation is not None} <= {PORTAL_PAGES, PORTAL_SERVICES}
    in_portal = [(g, o) for g in graduates for o in g.offers if o.answered_in == IN_THE_PORTAL]
    assert {o.decision for _, o in in_portal} == {"accept", "refuse", "open"}  # one left open for the visitor
    assert all(g.portal == PORTAL_PAGES for g, _ in in_portal)
    late = [g for g, o in in_portal if o.decision == "accept"]
    assert late and all(g.registered_first_as is not None for g in late)
    for graduate in late:
        first = graduate.registered_first_as
        assert first is not None and first.destination_code == "70" and first.employer is None
        assert graduate.destination_code == "10" and graduate.contract_reference == graduate.offers[0].agreement_id


def test_every_authorisation_is_one_the_portal_accepts(cast: Cast, season: list[Graduate]) -> None:
    verifying = {
        kind for rule in load_rules() if rule.service == "GraduateVerificationRequest" for kind in rule.sender_kinds
    }
    plans = [g.authorisation for g in season if g.authorisation is not None]
    assert len(plans) >= 30
    for plan in plans:
        assert plan.verifier.kind in verifying and is_credit_code(plan.verifier.credit_code)
        assert plan.facts and set(plan.facts) <= set(FACTS) and plan.purpose in PURPOSES
        assert plan.asks_beyond is None or (plan.asks_beyond in FACTS and plan.asks_beyond not in plan.facts)
        assert 1 <= plan.max_uses <= MAX_USES and 1 <= plan.valid_days <= MAX_VALID_DAYS
    assert len({p.purpose for p in plans}) == 3
    drawn = [g for g in season[len(cast.data["story"]) :] if g.authorisation is not None]
    assert all(g.portal == PORTAL_SERVICES for g in drawn)
