"""Where a graduate's personnel archive may go, and how: pure rules, no I/O.

The input is the graduate's filed destination registration (:class:`RegistrationFacts`, with the
meaning of its codes already looked up in the code lists) and a one-method directory of talent
service agencies; the output names the rule applied and the units allowed to receive. In order:

1. further study (category ``further_study``, except study abroad): the admitting institution;
2. study or work abroad (destination 85): the agency of the household registration region, since
   an institution abroad has no credit code and cannot receive a dossier;
3. targeted employment (the registration names a targeted unit): the targeted unit;
4. employed by a unit that keeps archives (unit nature ``archive_to_employer=yes``: state organs,
   public institutions, state-owned enterprises, armed forces): the employer;
5. employed by any other unit, or self-employed (a business of one's own or freelance work has no
   unit to keep the archive, so the graduate is treated like one employed by a non-public unit):
   the agency at the place of employment or of household registration, as the graduate chose;
6. awaiting employment or not employed: the agency of the household registration region.

"The agency of a region" is the nearest talent service agency walking county -> city ->
province, as routing does; when the registration names its receiver and that receiver is an
agency responsible somewhere on the walk, only it is allowed. Separately, confidential documents
travel only by a dispatch method that allows them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from gateway.codes.regions import ancestry

STUDY_ABROAD = "85"  # destination code: study or work abroad (出国、出境)


class ArchiveRule(StrEnum):
    """The rules by name; a refusal names one of these."""

    FURTHER_STUDY = "further-study"
    STUDY_ABROAD = "study-abroad"
    TARGETED_EMPLOYMENT = "targeted-employment"
    EMPLOYER_KEEPS_ARCHIVE = "employer-keeps-archive"
    NON_PUBLIC_EMPLOYER = "non-public-employer"
    SELF_EMPLOYED = "self-employed"
    NOT_EMPLOYED = "not-employed"
    CONFIDENTIAL_DISPATCH = "confidential-dispatch"


class AgencyDirectory(Protocol):
    def talent_agencies(self, region: str) -> Sequence[str]:
        """Ids of the enabled talent service agencies responsible for exactly ``region``."""
        ...


@dataclass(frozen=True)
class RegistrationFacts:
    """What the archive rules read from a filed registration."""

    destination_code: str
    destination_parent: str | None  # the two-digit code a three-digit subcode belongs to
    destination_category: str  # employed | not_employed | self_employed | further_study
    household_region: str
    archive_receiver_choice: str  # employer | agency_at_employment | agency_at_household | ...
    archive_receiver_id: str | None = None
    employer_id: str | None = None
    employer_unit_nature: str | None = None
    employer_keeps_archive: bool = False  # the unit nature's archive_to_employer
    employer_region: str | None = None
    targeted_unit_id: str | None = None
    admitting_institution_id: str | None = None

    @property
    def abroad(self) -> bool:
        return STUDY_ABROAD in (self.destination_code, self.destination_parent)


@dataclass(frozen=True)
class Receivers:
    """The rule that decides where the archive goes, and who may receive it (empty: nobody can)."""

    rule: ArchiveRule
    allowed: frozenset[str]
    because: str

    def refusal(self, receiver: str) -> str | None:
        """Why ``receiver`` may not receive the archive, or None when it may."""
        if receiver in self.allowed:
            return None
        if not self.allowed:
            return f"rule {self.rule}: {self.because}"
        who = ", ".join(sorted(self.allowed))
        return f"rule {self.rule}: {self.because}; only {who} may receive it, not {receiver}"


def allowed_receivers(facts: RegistrationFacts, directory: AgencyDirectory) -> Receivers:
    """The units that may receive the archive of the graduate described by ``facts``."""
    category = facts.destination_category
    if category == "further_study" and not facts.abroad:
        institution = facts.admitting_institution_id
        if institution is None:
            return Receivers(ArchiveRule.FURTHER_STUDY, frozenset(), "the registration names no admitting institution")
        return Receivers(
            ArchiveRule.FURTHER_STUDY, frozenset({institution}), "further study: the admitting institution"
        )
    if facts.abroad:
        return _agency(
            ArchiveRule.STUDY_ABROAD, facts.household_region, "abroad: household registration", facts, directory
        )
    if facts.targeted_unit_id is not None:
        targeted = frozenset({facts.targeted_unit_id})
        return Receivers(ArchiveRule.TARGETED_EMPLOYMENT, targeted, "targeted employment: the targeted unit")
    if category == "employed" and facts.employer_keeps_archive:
        if facts.employer_id is None:
            return Receivers(ArchiveRule.EMPLOYER_KEEPS_ARCHIVE, frozenset(), "the registration names no employer")
        because = f"an employer of unit nature {facts.employer_unit_nature} keeps the archive itself"
        return Receivers(ArchiveRule.EMPLOYER_KEEPS_ARCHIVE, frozenset({facts.employer_id}), because)
    if category in ("employed", "self_employed"):
        rule = ArchiveRule.NON_PUBLIC_EMPLOYER if category == "employed" else ArchiveRule.SELF_EMPLOYED
        return _chosen_agency(rule, facts, directory)
    return _agency(
        ArchiveRule.NOT_EMPLOYED, facts.household_region, "not employed: household registration", facts, directory
    )


def _chosen_agency(rule: ArchiveRule, facts: RegistrationFacts, directory: AgencyDirectory) -> Receivers:
    choice = facts.archive_receiver_choice
    if choice == "agency_at_household":
        return _agency(rule, facts.household_region, "household registration, as chosen", facts, directory)
    if choice == "agency_at_employment":
        if facts.employer_region is None:
            because = "the graduate chose the agency at the place of employment, but the registration names none"
            return Receivers(rule, frozenset(), because)
        return _agency(rule, facts.employer_region, "place of employment, as chosen", facts, directory)
    because = (
        f"the archive goes to a talent service agency, but the registration chose {choice!r}; "
        "it must choose agency_at_employment or agency_at_household"
    )
    return Receivers(rule, frozenset(), because)


def _agency(
    rule: ArchiveRule, region: str, place: str, facts: RegistrationFacts, directory: AgencyDirectory
) -> Receivers:
    """The agency responsible for ``region``: the one the registration names, if it is responsible
    anywhere on the walk county -> city -> province; otherwise the nearest ones on the walk."""
    nearest: frozenset[str] = frozenset()
    on_the_walk: set[str] = set()
    for code in ancestry(region):
        found = frozenset(directory.talent_agencies(code))
        if found and not nearest:
            nearest = found
        on_the_walk |= found
    because = f"{place}: the talent service agency responsible for {region}"
    if facts.archive_receiver_id is not None and facts.archive_receiver_id in on_the_walk:
        return Receivers(rule, frozenset({facts.archive_receiver_id}), f"{because}, named in the registration")
    if not nearest:
        return Receivers(
            rule, frozenset(), f"{place}: no talent service agency is responsible for {region} or above it"
        )
    return Receivers(rule, nearest, because)


def dispatch_refusal(method: str, confidential_methods: Collection[str], confidential_documents: int) -> str | None:
    """Why ``method`` may not carry the archive, or None when it may.

    ``confidential_methods`` are the dispatch methods the code list allows for confidential
    documents (``confidential_allowed=yes``); ordinary post and the graduate's own hands are not.
    """
    if confidential_documents == 0 or method in confidential_methods:
        return None
    return (
        f"rule {ArchiveRule.CONFIDENTIAL_DISPATCH}: {confidential_documents} confidential document(s) may travel "
        f"only by {' or '.join(sorted(confidential_methods))}, not by {method}"
    )
