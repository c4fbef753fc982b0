"""The graduation season, as a list of steps played by the agency systems against a running gateway.

Each :class:`Step` starts things the way people would (an employer offers, the university
registers, an agency asks for an archive, a parcel arrives) and then waits until the agencies'
systems have seen the consequences arrive through the gateway (an offer answered and reviewed, a
registration filed, a manifest received, a receipt returned). The agencies act on what they receive
by themselves; the season only plays the people.

Steps whose features are not built yet carry ``arrives_with`` instead of ``play``: the runner lists
them as not yet built and plays nothing for them. They are the hooks for the graduate grants
(issue 6): a graduate who grants and revokes an authorisation, and verification requests that
carry the authorisation token. To build one, give it a ``play`` function (and ``units``) here,
add the refusals it provokes on purpose (a request with a revoked grant) to
:meth:`Season.planned_refusals`, and give ``agencies.hukou_office`` the request it sends; the
summary then lists it as played (the tests in ``tests/demo`` name the steps not built yet: update them).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, TypeVar

from agencies.base import Agency
from agencies.education_department import EducationDepartment
from agencies.employer import Employer
from agencies.receiving import ArchiveReceivingUnit
from agencies.records import (
    ARCHIVE_HELD,
    DOCUMENT_DAMAGED,
    IDENTITY_TYPO,
    ORDINARY_POST,
    PARCEL_LOST,
    RECEIVER_REQUESTS,
    Graduate,
    Offer,
)
from agencies.university import University
from gateway.demo.cast import Cast
from gateway.sdk.client import GatewayRefusal

T = TypeVar("T")
CRL_RELOAD_SECONDS = 1.2  # a running gateway re-reads the revocation list at most once a second


class SeasonFailed(Exception):
    """The season could not go on: an agency's message went unanswered or something unplanned happened."""


class Progress(Protocol):
    def describe(self, text: str) -> None: ...

    def advance(self, units: int) -> None: ...


class Operator(Protocol):
    """What the gateway's operator does during the season (``gateway keys revoke`` / ``issue``)."""

    def revoke(self, participant_id: str) -> None: ...

    def issue(self, participant_id: str) -> None: ...


@dataclass(frozen=True)
class Step:
    name: str
    description: str
    play: Callable[[Season], None] | None = None
    units: Callable[[Season], int] = lambda season: 0
    arrives_with: str | None = None  # for a step not built yet: what brings it

    @property
    def built(self) -> bool:
        return self.play is not None


class Season:
    def __init__(
        self,
        cast: Cast,
        graduates: Sequence[Graduate],
        agencies: dict[str, Agency],
        operator: Operator,
        progress: Progress,
        step_timeout: float = 120.0,
    ) -> None:
        self.cast = cast
        self.graduates = list(graduates)
        self.agencies = agencies  # by participant id
        self.operator = operator
        self.progress = progress
        self.step_timeout = step_timeout
        self.played: list[str] = []
        self.university = self._agency(cast["university"].id, University)
        self.education_department = self._agency(cast["education_department"].id, EducationDepartment)

    def _agency(self, participant_id: str, kind: type[T]) -> T:
        agency = self.agencies[participant_id]
        if not isinstance(agency, kind):
            raise TypeError(f"{participant_id} is a {type(agency).__name__}, not a {kind.__name__}")
        return agency

    def employer(self, participant_id: str) -> Employer:
        return self._agency(participant_id, Employer)

    def receiver(self, graduate: Graduate) -> ArchiveReceivingUnit:
        return self._agency(graduate.archive_receiver.credit_code, ArchiveReceivingUnit)

    def offers(self) -> list[tuple[Graduate, Offer]]:
        return [(g, o) for g in self.graduates for o in g.offers]

    def play(self, steps: Sequence[Step]) -> None:
        for step in steps:
            if step.play is None:
                continue
            self.progress.describe(step.description)
            step.play(self)
            self.played.append(step.name)

    def planned_refusals(self) -> Counter[str]:
        """The refusals the steps played provoke on purpose, by fault code."""
        planned: Counter[str] = Counter()
        if "offers" in self.played:
            planned["AGREEMENT_OFFER_EXPIRED"] += sum(1 for _, o in self.offers() if o.expired_first)
        if "revoked-certificate" in self.played:
            planned["CERT_REVOKED"] += 1
        if "registrations" in self.played:
            planned["CODE_INVALID"] += sum(1 for g in self.graduates if IDENTITY_TYPO in g.mishaps)
        if "archive-transfers" in self.played:
            planned["ARCHIVE_RULE_VIOLATION"] += sum(
                1 for g in self.graduates if ORDINARY_POST in g.mishaps and ARCHIVE_HELD not in g.mishaps
            )
        return +planned

    # --- helpers for the steps -----------------------------------------------------------------

    def in_parallel(self, items: Iterable[T], action: Callable[[T], object], workers: int = 4) -> None:
        """Run ``action`` on every item, a few at a time, as several clerks would; re-raise the first error."""
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for future in [pool.submit(action, item) for item in items]:
                future.result()

    def wait_until(self, what: str, done: Callable[[], int], total: int) -> None:
        """Wait until ``done()`` reaches ``total``, advancing the progress as it grows; fail after the timeout."""
        deadline = time.monotonic() + self.step_timeout
        reported = 0
        while True:
            count = done()
            if count > reported:
                self.progress.advance(count - reported)
                reported = count
            if count >= total:
                return
            failures = [f"{a.id}: {f}" for a in self.agencies.values() for f in a.failures]
            if failures:
                raise SeasonFailed(f"an agency system failed while waiting for {what}: {failures[0]}")
            if time.monotonic() > deadline:
                raise SeasonFailed(f"waited {self.step_timeout:.0f} s for {what}: {count} of {total}")
            time.sleep(0.05)


# --- the steps ----------------------------------------------------------------------------------


def play_offers(season: Season) -> None:
    """Employers offer agreements; the university relays each graduate's answer and reviews acceptances.

    With the graduate portal (issue 6) the graduate answers in the portal instead, and the gateway
    sends the AgreementResponse on the graduate's behalf; the university then only reviews.
    """
    offers = season.offers()
    season.in_parallel(offers, lambda pair: season.employer(pair[1].employer.credit_code).offer(*pair))

    def settled() -> int:
        final = {"accept": "signed", "refuse": "refused"}
        return sum(
            1 for _, o in offers if season.employer(o.employer.credit_code).state(o.agreement_id) == final[o.decision]
        )

    season.wait_until("offers to be answered and reviewed", settled, len(offers))


def play_revoked_certificate(season: Season) -> None:
    """An employer's key is compromised: the operator revokes its certificate (``gateway keys revoke``).

    Its next message, asking to cancel a signed agreement, is refused with CERT_REVOKED; the operator
    issues a new certificate (``gateway keys issue``), the employer's system loads it and sends again.
    """
    victim = season.employer(season.cast[season.cast.data["revoked_certificate"]].id)
    cancelled = [(g, o) for g, o in season.offers() if o.cancelled and o.employer.credit_code == victim.id]
    if not cancelled:
        raise SeasonFailed(f"no signed agreement of {victim.id} is to be cancelled")
    graduate, offer = cancelled[0]
    reason = "单位岗位调整，经与毕业生协商一致，申请解除就业协议。"
    season.operator.revoke(victim.id)
    time.sleep(CRL_RELOAD_SECONDS)
    try:
        victim.request_cancellation(graduate, offer.agreement_id, reason)
    except GatewayRefusal as refusal:
        if refusal.code != "CERT_REVOKED":
            raise
    else:
        raise SeasonFailed(f"the gateway accepted a message signed with {victim.id}'s revoked certificate")
    season.operator.issue(victim.id)
    victim.reload_credentials()
    victim.request_cancellation(graduate, offer.agreement_id, reason)
    season.wait_until(
        "the cancellation to be reviewed", lambda: int(victim.state(offer.agreement_id) == "cancelled"), 1
    )


def play_registrations(season: Season) -> None:
    """The university registers every destination; the department files it, or sends it back to be corrected."""
    season.in_parallel(season.graduates, season.university.register)
    season.wait_until(
        "registrations to be filed",
        lambda: sum(1 for g in season.graduates if season.university.file(g.identity_number).registration == "filed"),
        len(season.graduates),
    )


def play_archive_transfers(season: Season) -> None:
    """Receiving units ask for archives (the graduate brings the transfer number); the university
    answers each request with a manifest, and dispatches the other archives on its own."""
    university = season.university

    def start(graduate: Graduate) -> None:
        transfer_number = university.file(graduate.identity_number).transfer_number
        if transfer_number is None:
            raise SeasonFailed(f"{graduate.registration_id} is not filed")
        if graduate.archive_initiative == RECEIVER_REQUESTS:
            season.receiver(graduate).request_archive(graduate, transfer_number)
        else:
            university.dispatch_archive(graduate)

    def arrived() -> int:
        count = 0
        for g in season.graduates:
            if ARCHIVE_HELD in g.mishaps:
                count += university.file(g.identity_number).held
            else:
                count += season.receiver(g).parcel_for(g.identity_number) is not None
        return count

    season.in_parallel(season.graduates, start)
    season.wait_until("manifests to reach their receiving units", arrived, len(season.graduates))


def arriving(season: Season) -> list[Graduate]:
    return [g for g in season.graduates if not {ARCHIVE_HELD, PARCEL_LOST} & g.mishaps]


def play_archive_receipts(season: Season) -> None:
    """The paper archives arrive (one parcel never does); each receiving unit checks it and returns a receipt."""
    graduates = arriving(season)

    def confirm(graduate: Graduate) -> None:
        receiver = season.receiver(graduate)
        parcel = receiver.parcel_for(graduate.identity_number)
        assert parcel is not None
        damaged = [d.document_id for d in graduate.documents if d.type == "physical_examination_form"]
        receiver.confirm_arrival(parcel.manifest_id, damaged if DOCUMENT_DAMAGED in graduate.mishaps else ())

    season.in_parallel(graduates, confirm)
    season.wait_until(
        "receipts to reach the university",
        lambda: sum(1 for g in graduates if season.university.file(g.identity_number).receipt),
        len(graduates),
    )


GRANTS = "issue 6, graduate grants: the portal at /graduate/ and tokens the gateway enforces"

STEPS: tuple[Step, ...] = (
    Step(
        "offers",
        "employers offer agreements; graduates answer; the university reviews",
        play_offers,
        lambda s: len(s.offers()),
    ),
    Step(
        "revoked-certificate",
        "an employer's certificate is revoked, then replaced",
        play_revoked_certificate,
        lambda s: 1,
    ),
    Step(
        "registrations",
        "the university registers destinations; the department files them",
        play_registrations,
        lambda s: len(s.graduates),
    ),
    Step(
        "grant",
        "a graduate grants the household registration office an authorisation",
        arrives_with=GRANTS,
    ),
    Step(
        "verify-with-token",
        "the household registration office verifies graduates with their tokens",
        arrives_with=GRANTS,
    ),
    Step(
        "revoke-grant",
        "a graduate revokes the grant; the next verification with it is refused",
        arrives_with=GRANTS,
    ),
    Step(
        "archive-transfers",
        "archives are requested and dispatched (机要 for confidential documents)",
        play_archive_transfers,
        lambda s: len(s.graduates),
    ),
    Step(
        "archive-receipts",
        "archives arrive; receiving units return receipts",
        play_archive_receipts,
        lambda s: len(arriving(s)),
    ),
)
