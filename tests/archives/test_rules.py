"""The archive rules, pure: every rule with a case it allows and a case it refuses."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from gateway.archives.rules import (
    Agency,
    ArchiveRule,
    RegisteredEmployer,
    RegistrationFacts,
    allowed_receivers,
    dispatch_refusal,
    missing_documents,
)
from gateway.codes.lists import code_list

HOUSEHOLD_AGENCY = "12110105400000002L"  # Chaoyang, serves 110105
CITY_AGENCY = "12110000400000003A"  # Beijing, serves 110000
PUDONG_AGENCY = "12310115400000004P"  # serves 310115
SOE = "91110102100000005B"
PRIVATE = "91110108500000006J"
TARGETED_UNIT = "12110000425000017T"
ADMITTING = "12310000425000001L"
METHODS = code_list("dispatch-methods")
DISABLED_AGENCY = "12110105400000099X"


class Agencies:
    def __init__(self, by_region: dict[str, list[str]], disabled: frozenset[str] = frozenset()) -> None:
        self.by_region = by_region
        self.disabled = disabled

    def talent_agencies(self, region: str) -> Sequence[Agency]:
        return [Agency(a, a not in self.disabled) for a in self.by_region.get(region, [])]


DIRECTORY = Agencies({"110105": [HOUSEHOLD_AGENCY], "110000": [CITY_AGENCY], "310115": [PUDONG_AGENCY]})


def facts(destination: str = "10", **changes: object) -> RegistrationFacts:
    """A registration's facts as the services build them: codes looked up in the code lists."""
    row = code_list("destination-codes")[destination]
    nature = code_list("unit-nature-codes").get(str(changes.get("employer_unit_nature")))
    values: dict[str, object] = {
        "destination_code": destination,
        "destination_parent": row["parent"] or None,
        "destination_category": row["category"],
        "household_region": "110105",
        "archive_receiver_choice": "agency_at_household",
        "employer_keeps_archive": nature is not None and nature["archive_to_employer"] == "yes",
    }
    values.update(changes)
    return RegistrationFacts(**values)  # type: ignore[arg-type]


def employed(nature: str, employer: str, **changes: object) -> RegistrationFacts:
    return facts("10", employer_id=employer, employer_unit_nature=nature, employer_region="110108", **changes)


# --- state organ, public institution, SOE, armed forces: the employer ---------------------------


@pytest.mark.parametrize("nature", ["10", "20", "21", "22", "23", "29", "31", "40"])
def test_employer_that_keeps_archives_receives_it(nature: str) -> None:
    receivers = allowed_receivers(employed(nature, SOE), DIRECTORY)
    assert receivers.rule == ArchiveRule.EMPLOYER_KEEPS_ARCHIVE
    assert receivers.allowed == {SOE}
    assert receivers.refusal(SOE) is None


def test_employer_that_keeps_archives_refuses_an_agency_even_if_the_graduate_chose_one() -> None:
    receivers = allowed_receivers(employed("31", SOE, archive_receiver_choice="agency_at_household"), DIRECTORY)
    refusal = receivers.refusal(HOUSEHOLD_AGENCY)
    assert refusal is not None
    assert "employer-keeps-archive" in refusal and SOE in refusal


# --- targeted employment: the targeted unit -----------------------------------------------------


def test_targeted_employment_goes_to_the_targeted_unit() -> None:
    receivers = allowed_receivers(
        employed("39", PRIVATE, targeted_unit_id=TARGETED_UNIT, archive_receiver_choice="targeted_unit"), DIRECTORY
    )
    assert receivers.rule == ArchiveRule.TARGETED_EMPLOYMENT
    assert receivers.refusal(TARGETED_UNIT) is None
    refusal = receivers.refusal(PRIVATE)
    assert refusal is not None and "targeted-employment" in refusal and TARGETED_UNIT in refusal


# --- any other employer: the agency the graduate chose ------------------------------------------


@pytest.mark.parametrize("nature", ["32", "39", "55", "56", "99"])
def test_non_public_employer_agency_at_household(nature: str) -> None:
    receivers = allowed_receivers(employed(nature, PRIVATE), DIRECTORY)
    assert receivers.rule == ArchiveRule.NON_PUBLIC_EMPLOYER
    assert receivers.allowed == {HOUSEHOLD_AGENCY}
    refusal = receivers.refusal(PRIVATE)
    assert refusal is not None and "non-public-employer" in refusal and HOUSEHOLD_AGENCY in refusal


def test_non_public_employer_agency_at_employment_walks_up_to_the_city() -> None:
    # Haidian (110108) has no agency of its own; its city (110100) neither; the province (110000) has.
    receivers = allowed_receivers(employed("39", PRIVATE, archive_receiver_choice="agency_at_employment"), DIRECTORY)
    assert receivers.allowed == {CITY_AGENCY}
    assert receivers.refusal(HOUSEHOLD_AGENCY) is not None


def test_non_public_employer_with_a_choice_of_employer_is_refused() -> None:
    receivers = allowed_receivers(employed("39", PRIVATE, archive_receiver_choice="employer"), DIRECTORY)
    assert receivers.allowed == frozenset()
    refusal = receivers.refusal(PRIVATE)
    assert refusal is not None and "'employer'" in refusal and "agency_at_household" in refusal


def test_the_agency_named_in_the_registration_wins_if_it_is_on_the_walk() -> None:
    named = allowed_receivers(employed("39", PRIVATE, archive_receiver_id=CITY_AGENCY), DIRECTORY)
    assert named.allowed == {CITY_AGENCY}
    assert named.refusal(HOUSEHOLD_AGENCY) is not None
    # A named agency that is not responsible for the region is ignored: the rule decides.
    elsewhere = allowed_receivers(employed("39", PRIVATE, archive_receiver_id=PUDONG_AGENCY), DIRECTORY)
    assert elsewhere.allowed == {HOUSEHOLD_AGENCY}
    assert elsewhere.refusal(PUDONG_AGENCY) is not None


def test_no_agency_anywhere_on_the_walk_refuses_everyone() -> None:
    receivers = allowed_receivers(employed("39", PRIVATE, household_region="440305"), DIRECTORY)
    refusal = receivers.refusal(HOUSEHOLD_AGENCY)
    assert refusal is not None and "no talent service agency is responsible for 440305" in refusal


# --- self-employed: like a non-public employer --------------------------------------------------


@pytest.mark.parametrize("destination", ["75", "76"])
def test_self_employed_goes_to_the_chosen_agency(destination: str) -> None:
    at_household = allowed_receivers(facts(destination), DIRECTORY)
    assert at_household.rule == ArchiveRule.SELF_EMPLOYED
    assert at_household.refusal(HOUSEHOLD_AGENCY) is None
    assert at_household.refusal(CITY_AGENCY) is not None
    # Chose the place of employment but named none (freelance): nobody can be chosen.
    at_work = allowed_receivers(facts(destination, archive_receiver_choice="agency_at_employment"), DIRECTORY)
    assert at_work.allowed == frozenset()
    assert "names none" in (at_work.refusal(HOUSEHOLD_AGENCY) or "")
    business = allowed_receivers(
        facts(destination, archive_receiver_choice="agency_at_employment", employer_region="310115"), DIRECTORY
    )
    assert business.allowed == {PUDONG_AGENCY}


# --- awaiting employment, not employed: the household registration's agency ---------------------


@pytest.mark.parametrize("destination", ["70", "71", "72"])
def test_not_employed_goes_to_the_household_agency(destination: str) -> None:
    receivers = allowed_receivers(facts(destination, archive_receiver_choice="agency_at_employment"), DIRECTORY)
    assert receivers.rule == ArchiveRule.NOT_EMPLOYED
    assert receivers.refusal(HOUSEHOLD_AGENCY) is None
    refusal = receivers.refusal(CITY_AGENCY)
    assert refusal is not None and "not-employed" in refusal and HOUSEHOLD_AGENCY in refusal


# --- further study: the admitting institution; abroad: the household agency ---------------------


@pytest.mark.parametrize("destination", ["80", "801", "802"])
def test_further_study_goes_to_the_admitting_institution(destination: str) -> None:
    receivers = allowed_receivers(
        facts(destination, admitting_institution_id=ADMITTING, archive_receiver_choice="admitting_institution"),
        DIRECTORY,
    )
    assert receivers.rule == ArchiveRule.FURTHER_STUDY
    assert receivers.refusal(ADMITTING) is None
    assert receivers.refusal(HOUSEHOLD_AGENCY) is not None


def test_further_study_without_an_admitting_institution_refuses_everyone() -> None:
    receivers = allowed_receivers(facts("80"), DIRECTORY)
    assert "names no admitting institution" in (receivers.refusal(HOUSEHOLD_AGENCY) or "")


def test_study_abroad_goes_to_the_household_agency() -> None:
    receivers = allowed_receivers(facts("85", admitting_institution_id=ADMITTING), DIRECTORY)
    assert receivers.rule == ArchiveRule.STUDY_ABROAD
    assert receivers.refusal(HOUSEHOLD_AGENCY) is None
    assert receivers.refusal(ADMITTING) is not None


# --- employers that would keep archives but hold no archive management rights -----------------


def registered(rights: bool, agency: Agency | None = None) -> RegisteredEmployer:
    return RegisteredEmployer(SOE, "31", rights, agency)


def test_an_employer_with_archive_rights_receives_it() -> None:
    receivers = allowed_receivers(employed("31", SOE, registered_employer=registered(True)), DIRECTORY)
    assert receivers.rule == ArchiveRule.EMPLOYER_KEEPS_ARCHIVE and receivers.allowed == {SOE}


def test_an_employer_without_archive_rights_sends_it_to_its_archive_agency() -> None:
    receivers = allowed_receivers(
        employed("31", SOE, registered_employer=registered(False, Agency(CITY_AGENCY))), DIRECTORY
    )
    assert receivers.rule == ArchiveRule.EMPLOYER_ARCHIVE_AGENCY
    assert receivers.allowed == {CITY_AGENCY}
    refusal = receivers.refusal(SOE)
    assert refusal is not None and "no archive management rights" in refusal and f"only {CITY_AGENCY}" in refusal


def test_an_employer_without_archive_rights_or_agency_refuses_everyone() -> None:
    receivers = allowed_receivers(employed("31", SOE, registered_employer=registered(False)), DIRECTORY)
    assert receivers.allowed == frozenset()
    assert "--archive-agency" in (receivers.refusal(SOE) or "")


def test_a_disabled_archive_agency_is_not_replaced() -> None:
    agency = Agency(CITY_AGENCY, enabled=False)
    receivers = allowed_receivers(employed("31", SOE, registered_employer=registered(False, agency)), DIRECTORY)
    assert receivers.allowed == frozenset()
    assert "disabled" in (receivers.refusal(CITY_AGENCY) or "")


# --- a disabled agency where the rule points: refused, never the level above ---------------------


def test_a_disabled_household_agency_is_refused_not_replaced_by_the_city() -> None:
    directory = Agencies({"110105": [DISABLED_AGENCY], "110000": [CITY_AGENCY]}, frozenset({DISABLED_AGENCY}))
    receivers = allowed_receivers(facts("70"), directory)
    assert receivers.allowed == frozenset()
    refusal = receivers.refusal(CITY_AGENCY)
    assert refusal is not None and DISABLED_AGENCY in refusal and "disabled" in refusal and "level above" in refusal
    # Enabled again, it is the one.
    assert allowed_receivers(facts("70"), Agencies({"110105": [DISABLED_AGENCY], "110000": [CITY_AGENCY]})).allowed == {
        DISABLED_AGENCY
    }


def test_a_disabled_agency_named_in_the_registration_is_refused() -> None:
    directory = Agencies({"110105": [HOUSEHOLD_AGENCY], "110000": [CITY_AGENCY]}, frozenset({CITY_AGENCY}))
    receivers = allowed_receivers(facts("70", archive_receiver_id=CITY_AGENCY), directory)
    assert receivers.allowed == frozenset()
    assert "named in the registration" in (receivers.refusal(HOUSEHOLD_AGENCY) or "")


# --- how an archive travels: confidential communication or special personnel, never by hand ----


def test_the_code_list_permits_two_methods_for_a_personnel_archive() -> None:
    assert sorted(c for c, row in METHODS.items() if row["personnel_archive"] == "yes") == [
        "confidential_communication",
        "special_personnel",
    ]


@pytest.mark.parametrize("method", ["confidential_communication", "special_personnel"])
def test_a_permitted_method(method: str) -> None:
    assert dispatch_refusal(method, METHODS) is None


@pytest.mark.parametrize(("method", "why"), [("ordinary_post", "机要"), ("carried_by_graduate", "本人自带")])
def test_never_by_post_and_never_by_the_graduate_whatever_the_contents(method: str, why: str) -> None:
    refusal = dispatch_refusal(method, METHODS)
    assert refusal is not None and "dispatch-method" in refusal and method in refusal and why in refusal
    assert "confidential_communication or special_personnel" in refusal


# --- a complete archive -------------------------------------------------------------------------


def test_the_required_documents_are_a_code_list() -> None:
    types = code_list("archive-document-types")
    assert missing_documents({"transcript", "graduate_registration_form"}, types) == []
    assert missing_documents({"transcript", "student_registration_form"}, types) == ["graduate_registration_form"]
    assert missing_documents(set(), types) == ["graduate_registration_form", "transcript"]
