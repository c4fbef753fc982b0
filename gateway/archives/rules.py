"""Where a graduate's personnel archive may go, and how: pure rules, no I/O.

The input is the graduate's filed destination registration (:class:`RegistrationFacts`, with the
meaning of its codes already looked up in the code lists, and what the registry says of the
employer it names) and a one-method directory of talent service agencies; the output names the
rule applied and the units allowed to receive. In order:

1. further study (category ``further_study``, except study abroad): the admitting institution;
2. study or work abroad (destination 85): the agency of the household registration region, since
   an institution abroad has no credit code and cannot receive a dossier;
3. targeted employment (the registration names a targeted unit and no release of the targeted
   agreement): the targeted unit;
4. employed by a unit that keeps archives (unit nature ``archive_to_employer=yes``: state organs,
   public institutions, state-owned enterprises, armed forces): the employer, if it holds archive
   management rights; otherwise the talent service agency the registry names as keeping its
   personnel files (the unit nature and the rights are the registry's word when the employer is
   registered as an employer);
5. employed by any other unit, or self-employed (a business of one's own or freelance work has no
   unit to keep the archive, so the graduate is treated like one employed by a non-public unit):
   the agency at the place of employment or of household registration, as the graduate chose;
6. awaiting employment or not employed: the agency of the household registration region.

"The agency of a region" is found by the same rule routing uses
(:func:`gateway.routing.resolve.nearest_level`): walking county -> city -> province, the nearest
level at which any talent service agency is responsible decides; when the registration names its
receiver and that receiver is an agency responsible somewhere on the walk, only it is allowed. A
disabled agency where the rule points is never silently replaced by the level above: the archive
cannot go until it is enabled again or another agency is registered for the region. Separately, a
personnel archive travels only by a dispatch method the code list permits (never carried by its
subject), and must hold every document type the code list marks as required.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from gateway.codes.regions import ancestry
from gateway.routing.resolve import nearest_level

STUDY_ABROAD = "85"  # destination code: study or work abroad (出国、出境)


class ArchiveRule(StrEnum):
    """The rules by name; a refusal names one of these."""

    FURTHER_STUDY = "further-study"
    STUDY_ABROAD = "study-abroad"
    TARGETED_EMPLOYMENT = "targeted-employment"
    EMPLOYER_KEEPS_ARCHIVE = "employer-keeps-archive"
    EMPLOYER_ARCHIVE_AGENCY = "employer-archive-agency"
    NON_PUBLIC_EMPLOYER = "non-public-employer"
    SELF_EMPLOYED = "self-employed"
    NOT_EMPLOYED = "not-employed"
    DISPATCH_METHOD = "dispatch-method"


@dataclass(frozen=True)
class Agency:
    id: str
    enabled: bool = True


class AgencyDirectory(Protocol):
    def talent_agencies(self, region: str) -> Sequence[Agency]:
        """The talent service agencies responsible for exactly ``region``, enabled or not."""
        ...


@dataclass(frozen=True)
class RegisteredEmployer:
    """What the registry says of the employer a registration names: the registry is the authority."""

    id: str
    unit_nature: str
    archive_rights: bool  # 有档案管理权限
    archive_agency: Agency | None  # the talent service agency keeping its personnel files, without rights


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
    targeted_unit_id: str | None = None  # None also when the targeted agreement was released
    admitting_institution_id: str | None = None
    registered_employer: RegisteredEmployer | None = None  # None: not registered as an employer

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
        registered = facts.registered_employer
        if registered is not None and not registered.archive_rights:
            return _archive_agency(registered)
        because = f"an employer of unit nature {facts.employer_unit_nature} keeps the archive itself"
        if registered is not None:
            because += " (it holds archive management rights)"
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


def _archive_agency(employer: RegisteredEmployer) -> Receivers:
    """An employer that would keep archives by its nature but holds no archive management rights."""
    rule = ArchiveRule.EMPLOYER_ARCHIVE_AGENCY
    without = (
        f"employer {employer.id} (unit nature {employer.unit_nature}) holds no archive management rights "
        "(有档案管理权限)"
    )
    agency = employer.archive_agency
    if agency is None:
        return Receivers(
            rule,
            frozenset(),
            f"{without}, and the registry names no talent service agency keeping its personnel files: the "
            f"operator registers it (gateway participants update {employer.id} --archive-agency ID)",
        )
    if not agency.enabled:
        return Receivers(
            rule,
            frozenset(),
            f"{without}; its personnel files are kept by {agency.id}, which is disabled: the archive waits "
            "until it is enabled again or the employer's archive agency is changed",
        )
    return Receivers(rule, frozenset({agency.id}), f"{without}; its personnel files are kept by {agency.id}")


def _agency(
    rule: ArchiveRule, region: str, place: str, facts: RegistrationFacts, directory: AgencyDirectory
) -> Receivers:
    """The agency responsible for ``region``: the one the registration names, if it is responsible
    anywhere on the walk county -> city -> province; otherwise those of the nearest level at which
    any agency is responsible, enabled or not (:func:`gateway.routing.resolve.nearest_level`)."""
    named = facts.archive_receiver_id
    if named is not None:
        for code in ancestry(region):
            for agency in directory.talent_agencies(code):
                if agency.id != named:
                    continue
                if not agency.enabled:
                    because = (
                        f"{place}: {named}, named in the registration as the agency responsible for {code}, "
                        "is disabled; the archive waits until it is enabled again or the registration names another"
                    )
                    return Receivers(rule, frozenset(), because)
                because = f"{place}: the talent service agency responsible for {region}, named in the registration"
                return Receivers(rule, frozenset({named}), because)
    found = nearest_level(region, directory.talent_agencies)
    if found is None:
        return Receivers(
            rule, frozenset(), f"{place}: no talent service agency is responsible for {region} or above it"
        )
    level, agencies = found
    enabled = frozenset(a.id for a in agencies if a.enabled)
    if not enabled:
        names = ", ".join(sorted(a.id for a in agencies))
        because = (
            f"{place}: the talent service agency responsible for {level} is {names}, which is disabled; the archive "
            f"does not go to the level above (the operator enables it, or registers another agency for {level})"
        )
        return Receivers(rule, frozenset(), because)
    return Receivers(rule, enabled, f"{place}: the talent service agency responsible for {region}")


def dispatch_refusal(method: str, methods: Mapping[str, Mapping[str, str]]) -> str | None:
    """Why ``method`` may not carry a personnel archive, or None when it may.

    ``methods`` is the dispatch-method code list: ``personnel_archive=yes`` marks the methods a
    personnel archive may travel by (confidential communication, special personnel), whatever
    the manifest says about its documents; ``reason_en`` says why a method may not.
    """
    row = methods[method]
    if row["personnel_archive"] == "yes":
        return None
    permitted = " or ".join(sorted(code for code, r in methods.items() if r["personnel_archive"] == "yes"))
    return (
        f"rule {ArchiveRule.DISPATCH_METHOD}: a personnel archive may not travel by {method} "
        f"({row['name_zh']}, {row['name_en']}): {row['reason_en']}; it travels only by {permitted}"
    )


def missing_documents(types: Collection[str], document_types: Mapping[str, Mapping[str, str]]) -> list[str]:
    """The required document types (``required=yes`` in the code list) that ``types`` lacks, in list order."""
    return [code for code, row in document_types.items() if row["required"] == "yes" and code not in types]
