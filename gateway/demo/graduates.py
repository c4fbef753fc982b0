"""Synthetic graduates for the demonstration season, the same ones for the same seed.

The first graduates tell the season's stories (``story`` in ``season-cast.json``: the expired
offer, the typo, the archive by ordinary post, the overdue archives ...); the next ones take each
destination code the stories did not use, so that from ``len(story) + uncovered codes`` graduates
on every code of ``schemas/codes/destination-codes.csv`` occurs; the rest are drawn with realistic
weights. Identity numbers are valid GB 11643 numbers (python-stdnum computes the check character)
from the household registration region; names, majors and positions come from ``people.json``.

The stories also say who uses the graduate portal and how (its pages or its services), which
offers are answered there, who was registered as awaiting employment before the job came, and
the authorisation each grants; of the other graduates, a share (``grants`` in the rates) grants
the verifier their situation calls for (the household registration office where they work or
live, their employer, the talent service agency that receives their archive), through the portal's
services, sometimes asked for more than was granted.

Where a graduate's archive goes is decided by the gateway's own archive rules
(:func:`gateway.archives.rules.allowed_receivers`) over the cast, so that the registration names
the unit the rules allow; the gateway checks it again when the archive moves.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from stdnum.cn import ric

from agencies.records import (
    DOCUMENT_DAMAGED,
    IN_THE_PORTAL,
    MISHAPS,
    PORTAL_PAGES,
    PORTAL_SERVICES,
    RECEIVER_REQUESTS,
    SHORT_CODE,
    TOKEN,
    UNIVERSITY_DISPATCHES,
    ArchiveDocument,
    Authorisation,
    Graduate,
    Offer,
    Organisation,
)
from gateway.archives.rules import Agency, RegisteredEmployer, RegistrationFacts, allowed_receivers
from gateway.codes.lists import code_list
from gateway.codes.regions import current_counties
from gateway.demo.cast import Cast, load_json

UNIVERSITY_UNIT_NATURE = "21"  # a university that employs a graduate (research assistant) is a public institution
AGE_AT_GRADUATION = {"associate": 21, "bachelor": 22, "master": 25, "doctorate": 28}
YEARS_OF_STUDY = {"associate": 3, "bachelor": 4, "master": 3, "doctorate": 4}


class CastAgencies:
    """The archive rules' directory of talent service agencies, over the cast."""

    def __init__(self, cast: Cast) -> None:
        self._cast = cast

    def talent_agencies(self, region: str) -> Sequence[Agency]:
        return [
            Agency(m.id, m.participant.enabled)
            for m in self._cast.of_kind("talent_service_agency")
            if region in m.participant.regions_served
        ]


@dataclass
class _Draw:
    """The random choices for one season, in one place, so that a seed gives one season."""

    rng: random.Random
    people: dict[str, Any]

    def weighted(self, weights: dict[str, int]) -> str:
        keys = list(weights)
        return self.rng.choices(keys, weights=[weights[k] for k in keys])[0]

    def chance(self, rate: float) -> bool:
        return self.rng.random() < rate

    def name(self) -> str:
        given = "".join(self.rng.choice(self.people["given"]) for _ in range(self.rng.choice((1, 2, 2))))
        return str(self.rng.choice(self.people["surnames"])) + given


def minimum_graduates() -> int:
    """The fewest graduates that tell every story of the season (each story is one graduate)."""
    return len(load_json("season-cast.json")["story"])


def make_graduates(cast: Cast, count: int, seed: int, year: int) -> list[Graduate]:
    """``count`` graduates of the cast's university graduating on 30 June ``year``, drawn from ``seed``."""
    draw = _Draw(random.Random(seed), load_json("people.json"))  # noqa: S311 (synthetic data, seeded on purpose)
    story: list[dict[str, Any]] = cast.data["story"]
    destinations = code_list("destination-codes")
    told = {spec["destination"] for spec in story}
    uncovered = [code for code in destinations if code not in told]
    taken: set[str] = set()
    offers = _OfferNumbers(year)
    graduates = []
    for index in range(1, count + 1):
        if index <= len(story):
            spec = story[index - 1]
        elif index <= len(story) + len(uncovered):
            spec = {"destination": uncovered[index - len(story) - 1]}
        else:
            spec = {"destination": draw.weighted(cast.data["destination_weights"])}
        graduates.append(_graduate(cast, draw, spec, index, year, seed, taken, offers))
    return graduates


class _OfferNumbers:
    def __init__(self, year: int) -> None:
        self._year = year
        self._next = 0

    def __call__(self) -> str:
        self._next += 1
        return f"AGR-{self._year}-{self._next:06d}"


def _graduate(
    cast: Cast,
    draw: _Draw,
    spec: dict[str, Any],
    index: int,
    year: int,
    seed: int,
    taken: set[str],
    agreement_id: _OfferNumbers,
) -> Graduate:
    rates = cast.data["rates"]
    destination = spec["destination"]
    row = code_list("destination-codes")[destination]
    category, abroad = row["category"], "85" in (destination, row["parent"])
    level = spec.get("level") or draw.weighted(cast.data["education_levels"])
    major_code, major = draw.rng.choice(draw.people["majors"])
    household = spec.get("household") or _household(cast, draw)
    employer = _employer(cast, draw, spec, destination)
    targeted = _alias(cast, spec.get("targeted"))
    if targeted is None and employer is not None and employer.kind == "employer" and employer.unit_nature == "10":
        targeted = employer if destination in ("11", "12") and draw.chance(rates["targeted"]) else None
    admitting = _alias(cast, spec.get("admitting"))
    if admitting is None and category == "further_study" and not abroad:
        admitting = cast.organisation(draw.rng.choice(cast.data["admitting_institutions"]))
    choice = spec.get("choice") or _choice(draw, category, abroad, employer, targeted, rates)
    receiver = _receiver(cast, destination, row, household, choice, employer, targeted, admitting)
    initiative = spec.get("archive") or (
        UNIVERSITY_DISPATCHES
        if admitting is not None or not draw.chance(rates["receiver_requests"])
        else RECEIVER_REQUESTS
    )
    mishaps = frozenset(spec.get("mishaps", ()))
    unknown = mishaps - MISHAPS
    if unknown:
        raise ValueError(f"season-cast.json: unknown mishaps {sorted(unknown)}")
    if not mishaps and draw.chance(rates["document_damaged"]):
        mishaps = frozenset({DOCUMENT_DAMAGED})
    graduate_offers = _offers(cast, draw, spec, destination, employer, agreement_id)
    accepted = [o for o in graduate_offers if o.decision == "accept" and not o.cancelled]
    contract = accepted[0].agreement_id if destination == "10" and accepted else None
    if destination == "11":
        contract = f"LC-{year}-{index:06d}"
    graduate = Graduate(
        index=index,
        identity_number=_identity_number(draw, household, year - AGE_AT_GRADUATION[level], taken),
        name=draw.name(),
        school=cast.organisation("university"),
        student_number=f"{year - YEARS_OF_STUDY[level]}{index:06d}",
        education_level=level,
        major=major,
        major_code=major_code,
        graduation_date=date(year, 6, 30),
        leaves_late=bool(spec.get("leaves_late", draw.chance(rates["leaves_late"]))),
        household_region=household,
        destination_code=destination,
        archive_receiver_choice=choice,
        archive_receiver=receiver,
        archive_initiative=initiative,
        dispatch_method=spec.get("dispatch")
        or ("special_personnel" if draw.chance(rates["special_personnel"]) else "confidential_communication"),
        documents=_documents(cast, draw, level, seed, index),
        employer=employer,
        contract_reference=contract,
        targeted_unit=targeted,
        admitting_institution=admitting,
        offers=graduate_offers,
        mishaps=mishaps,
    )
    if "registered_first" in spec:
        graduate = replace(graduate, registered_first_as=_registered_first(cast, graduate, spec["registered_first"]))
    authorisation = _authorisation(cast, draw, spec if index <= len(cast.data["story"]) else None, graduate)
    portal = spec.get("portal") or (PORTAL_SERVICES if authorisation is not None else None)
    if any(o.answered_in == IN_THE_PORTAL for o in graduate_offers) and portal != PORTAL_PAGES:
        # Only the portal's pages send the answer on at once (the served gateway hands it to its broker).
        raise ValueError(f'season-cast.json: story {index} answers an offer in the portal: give it "portal": "pages"')
    if portal not in (None, PORTAL_PAGES, PORTAL_SERVICES):
        raise ValueError(f"season-cast.json: story {index}: portal is pages or services, not {portal!r}")
    return replace(graduate, portal=portal, authorisation=authorisation)


def _registered_first(cast: Cast, graduate: Graduate, destination: str) -> Graduate:
    """What the university registers before the graduate has the job: ``destination`` (awaiting
    employment, say), no employer, the archive for the talent service agency of the household region."""
    row = code_list("destination-codes")[destination]
    if row["category"] == "employed":
        raise ValueError(f"season-cast.json: a graduate first registered as {destination} would already be employed")
    choice = "agency_at_household"
    receiver = _receiver(cast, destination, row, graduate.household_region, choice, None, None, None)
    return replace(
        graduate,
        destination_code=destination,
        employer=None,
        contract_reference=None,
        targeted_unit=None,
        admitting_institution=None,
        archive_receiver_choice=choice,
        archive_receiver=receiver,
        offers=(),
    )


PURPOSE_TEXTS = {
    "settlement": "毕业生申请在就业地落户，核验学历与毕业去向。",
    "employment_onboarding": "新员工入职，核验学历信息。",
    "archive_receipt": "接收毕业生人事档案，核验档案转递情况。",
}
PURPOSE_FACTS = {
    "settlement": ("identity_match", "education", "destination", "employment_evidence"),
    "employment_onboarding": ("identity_match", "education"),
    "archive_receipt": ("identity_match", "archive"),
}
BEYOND = {"settlement": "archive", "employment_onboarding": "destination", "archive_receipt": "education"}


def _authorisation(cast: Cast, draw: _Draw, story: dict[str, Any] | None, graduate: Graduate) -> Authorisation | None:
    """The story's grant, or for a drawn graduate (at the ``grants`` rate) one for the verifier their
    situation calls for: the household registration office to settle where they work or live, their
    employer to take them on, or the talent service agency that receives their archive."""
    rates = cast.data["rates"]
    if story is not None:  # a story graduate grants only what their story says
        told: dict[str, Any] | None = story.get("grant")
        if told is None:
            return None
        purpose = told["purpose"]
        facts = tuple(told.get("facts", PURPOSE_FACTS[purpose]))
        return Authorisation(
            verifier=cast.organisation(told["verifier"]),
            facts=facts,
            purpose=purpose,
            purpose_text=PURPOSE_TEXTS[purpose],
            hand_over=told.get("hand_over", TOKEN),
            max_uses=int(told.get("max_uses", 1)),
            asks_beyond=told.get("asks_beyond"),
            used_twice=bool(told.get("used_twice", False)),
            revokes=bool(told.get("revokes", False)),
        )
    if not draw.chance(rates["grants"]):
        return None
    hukou = cast["hukou_office"].organisation
    choices: list[tuple[Organisation, str]] = []
    employer = graduate.employer
    if employer is not None and hukou.region in (employer.region, graduate.household_region):
        choices.append((hukou, "settlement"))
    if employer is not None and employer.kind == "employer":
        choices.append((employer, "employment_onboarding"))
    if graduate.archive_receiver.kind == "talent_service_agency":
        choices.append((graduate.archive_receiver, "archive_receipt"))
    if not choices:
        return None
    # Settling where they work is what a graduate most needs verified; the others as it falls.
    verifier, purpose = choices[0] if choices[0][0] == hukou else draw.rng.choice(choices)
    return Authorisation(
        verifier=verifier,
        facts=PURPOSE_FACTS[purpose],
        purpose=purpose,
        purpose_text=PURPOSE_TEXTS[purpose],
        hand_over=SHORT_CODE if draw.chance(rates["short_code"]) else TOKEN,
        max_uses=2 if draw.chance(rates["two_uses"]) else 1,
        asks_beyond=BEYOND[purpose] if draw.chance(rates["asks_beyond"]) else None,
    )


def _alias(cast: Cast, alias: str | None) -> Organisation | None:
    return None if alias is None else cast.organisation(alias)


def _household(cast: Cast, draw: _Draw) -> str:
    province = draw.weighted(cast.data["household_provinces"])
    return draw.rng.choice(current_counties(province)).code


def _employer(cast: Cast, draw: _Draw, spec: dict[str, Any], destination: str) -> Organisation | None:
    alias = spec.get("employer")
    if alias is None:
        choices = cast.data["employers"].get(destination)
        if not choices:
            return None
        alias = draw.rng.choice(choices)
    organisation = cast.organisation(alias)
    if organisation.unit_nature is None:  # a university as employer
        organisation = replace(organisation, unit_nature=UNIVERSITY_UNIT_NATURE)
    return organisation


def _choice(
    draw: _Draw,
    category: str,
    abroad: bool,
    employer: Organisation | None,
    targeted: Organisation | None,
    rates: dict[str, float],
) -> str:
    if category == "further_study" and not abroad:
        return "admitting_institution"
    if targeted is not None:
        return "targeted_unit"
    if employer is not None and category == "employed":
        keeps = code_list("unit-nature-codes")[employer.unit_nature or ""]["archive_to_employer"] == "yes"
        if keeps:
            return "employer"
        return "agency_at_employment" if draw.chance(rates["agency_at_employment"]) else "agency_at_household"
    return "agency_at_household"


def _receiver(
    cast: Cast,
    destination: str,
    row: dict[str, str],
    household: str,
    choice: str,
    employer: Organisation | None,
    targeted: Organisation | None,
    admitting: Organisation | None,
) -> Organisation:
    nature = code_list("unit-nature-codes").get(employer.unit_nature or "") if employer else None
    facts = RegistrationFacts(
        destination_code=destination,
        destination_parent=row["parent"] or None,
        destination_category=row["category"],
        household_region=household,
        archive_receiver_choice=choice,
        employer_id=employer.credit_code if employer else None,
        employer_unit_nature=employer.unit_nature if employer else None,
        employer_keeps_archive=nature is not None and nature["archive_to_employer"] == "yes",
        employer_region=employer.region if employer else None,
        targeted_unit_id=targeted.credit_code if targeted else None,
        admitting_institution_id=admitting.credit_code if admitting else None,
    )
    receivers = allowed_receivers(replace(facts, registered_employer=_registered(cast, employer)), CastAgencies(cast))
    if not receivers.allowed:
        raise ValueError(f"season-cast.json: no archive receiver for destination {destination}: {receivers.because}")
    return cast.by_id(sorted(receivers.allowed)[0]).organisation


def _registered(cast: Cast, employer: Organisation | None) -> RegisteredEmployer | None:
    """What the registry will say of the employer (the cast registers its archive rights and agency)."""
    if employer is None or employer.kind != "employer" or employer.unit_nature is None:
        return None
    entry = cast.by_id(employer.credit_code).participant
    agency = Agency(entry.archive_agency_id) if entry.archive_agency_id else None
    return RegisteredEmployer(employer.credit_code, employer.unit_nature, bool(entry.archive_rights), agency)


def _offers(
    cast: Cast,
    draw: _Draw,
    spec: dict[str, Any],
    destination: str,
    employer: Organisation | None,
    agreement_id: _OfferNumbers,
) -> tuple[Offer, ...]:
    def offer(alias_or_org: str | Organisation, decision: str, **flags: Any) -> Offer:
        org = cast.organisation(alias_or_org) if isinstance(alias_or_org, str) else alias_or_org
        salary = f"{draw.rng.randrange(6000, 30000, 500)}.00"
        return Offer(agreement_id(), org, draw.rng.choice(draw.people["positions"]), salary, decision, **flags)

    if "offers" in spec:
        return tuple(
            offer(
                o["from"],
                o["decision"],
                expired_first=o.get("expired_first", False),
                cancelled=o.get("cancelled", False),
                answered_in=o.get("answered_in", "office"),
            )
            for o in spec["offers"]
        )
    if destination == "10" and employer is not None:
        return (offer(employer, "accept"),)
    if draw.chance(cast.data["rates"]["refused_offer"]):
        return (offer(draw.rng.choice(cast.data["offering_employers"]), "refuse"),)
    return ()


def _identity_number(draw: _Draw, household: str, birth_year: int, taken: set[str]) -> str:
    """A valid number from the household region, or, where that region did not exist yet in the birth
    year, from another county of the same province (the place of birth)."""
    counties = current_counties(household[:2] + "0000")
    for attempt in range(1000):
        region = household if attempt < 20 else draw.rng.choice(counties).code
        born = date(birth_year - draw.rng.randint(0, 1), draw.rng.randint(1, 12), draw.rng.randint(1, 28))
        first17 = f"{region}{born:%Y%m%d}{draw.rng.randint(1, 999):03d}"
        number = first17 + ric.calc_check_digit(first17 + "X")  # stdnum expects a check place holder
        if number not in taken and ric.is_valid(number):
            taken.add(number)
            return number
    raise ValueError(f"no valid identity number for a graduate from {household}")


def _documents(cast: Cast, draw: _Draw, level: str, seed: int, index: int) -> tuple[ArchiveDocument, ...]:
    chosen = []
    for spec in cast.data["archive_documents"]:
        if level in spec.get("not_for", ()):
            continue
        if spec.get("optional") and not draw.chance(cast.data["rates"]["student_loan"]):
            continue
        chosen.append(spec)
    return tuple(
        ArchiveDocument(
            document_id=f"D{number:02d}",
            type=spec["type"],
            title=spec["title"],
            pages=int(spec["pages"]),
            confidential=bool(spec["confidential"]),
            scan_sha256=hashlib.sha256(f"demo-scan/{seed}/{index}/{spec['type']}".encode()).hexdigest(),
        )
        for number, spec in enumerate(chosen, start=1)
    )
