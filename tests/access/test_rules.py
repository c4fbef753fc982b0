"""The access-rights matrix and overrides, as pure decisions."""

from __future__ import annotations

import pytest

from gateway.access.rules import Override, Party, a_kind, decide, load_rules
from gateway.intake.catalog import ServiceCatalog
from gateway.settings import SCHEMAS_DIR

RULES = load_rules()
UNIVERSITY_BJ = Party("12110108400000008J", "university", "110108")
EDU_BJ = Party("11110000000000001R", "education_department", "110000")
EDU_ZJ = Party("113300000000000098", "education_department", "330000")
EMPLOYER = Party("91110108500000006J", "employer", "110108")
HUKOU = Party("111101080000000075", "household_registration_office", "110108")


def test_every_rule_names_a_service_of_the_wsdl_and_every_service_has_a_rule() -> None:
    # The plumbing services (mailbox, status) go to the gateway itself: no access rules apply.
    services = {s.name for s in ServiceCatalog(SCHEMAS_DIR).services if not s.is_plumbing}
    assert {r.service for r in RULES} == services


def test_registrations_go_to_the_education_department_of_the_own_province_only() -> None:
    assert decide(RULES, [], "DestinationRegistration", UNIVERSITY_BJ, EDU_BJ).allowed
    refused = decide(RULES, [], "DestinationRegistration", UNIVERSITY_BJ, EDU_ZJ)
    assert not refused.allowed
    assert "rule R-REG-1" in refused.reason and "same province" in refused.reason


@pytest.mark.parametrize(
    ("service", "sender", "recipient"),
    [
        ("DestinationRegistration", EMPLOYER, EDU_BJ),
        ("AgreementOffer", UNIVERSITY_BJ, EMPLOYER),
        ("GraduateVerificationRequest", HUKOU, UNIVERSITY_BJ),
        ("RegistrationFiled", UNIVERSITY_BJ, EDU_BJ),
    ],
)
def test_kinds_outside_the_matrix_are_refused_naming_the_rules(service: str, sender: Party, recipient: Party) -> None:
    decision = decide(RULES, [], service, sender, recipient)
    assert not decision.allowed
    assert f"no rule lets {a_kind(sender.kind)} send {service} to {a_kind(recipient.kind)}" in decision.reason
    assert "R-" in decision.reason


def test_overrides_deny_beats_grant_beats_matrix() -> None:
    grant = Override(1, EMPLOYER.id, "DestinationRegistration", EDU_BJ.id, "grant", "pilot")
    assert decide(RULES, [grant], "DestinationRegistration", EMPLOYER, EDU_BJ).reason.startswith("granted by")
    assert not decide(RULES, [grant], "DestinationRegistration", EMPLOYER, EDU_ZJ).allowed  # other counterpart
    deny = Override(2, UNIVERSITY_BJ.id, "*", None, "deny", "suspended")
    decision = decide(RULES, [deny], "DestinationRegistration", UNIVERSITY_BJ, EDU_BJ)
    assert not decision.allowed and "access override #2 (suspended)" in decision.reason


def test_kinds_read_as_words_with_their_article() -> None:
    assert a_kind("employer") == "an employer"
    assert a_kind("education_department") == "an education department"
    assert a_kind("talent_service_agency") == "a talent service agency"
    assert a_kind("university") == "a university"  # "a", although it starts with a vowel letter
