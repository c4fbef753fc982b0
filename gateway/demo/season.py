"""The graduation season: the people and systems taking part, and how its steps are played.

A season is a list of steps (:data:`gateway.demo.steps.STEPS`) played by the agency systems and
the graduates against a running gateway. Each :class:`Step` starts things the way people would
(an employer offers, the university registers, a graduate activates a portal account and grants a
verifier, an agency asks for an archive, a parcel arrives, a clerk verifies a graduate at the
counter) and then waits until the agencies' systems have seen the consequences arrive through
the gateway (an offer answered and reviewed, a registration filed, a manifest received, a receipt
returned). The agencies act on what they receive by themselves; the season only plays the people.

The order is the season's: offers made before the registrations are answered through the
university (a portal account is activated with the filed registration, so there is none yet);
after the registrations the graduates with a part in the portal activate their accounts, and
offers made from then on are answered there; once the archives have moved, graduates grant
verifiers their authorisations, the verifiers verify, and a graduate revokes a grant.
:meth:`Season.planned_refusals` says which faults the steps provoke on purpose.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Protocol, TypeVar

from agencies.base import Agency
from agencies.education_department import EducationDepartment
from agencies.employer import Employer
from agencies.receiving import ArchiveReceivingUnit
from agencies.records import (
    ARCHIVE_HELD,
    GRADUATE_CARRIES,
    IDENTITY_TYPO,
    IN_THE_PORTAL,
    ORDINARY_POST,
    TOLD_THE_OFFICE,
    TRANSCRIPT_FORGOTTEN,
    UNIT_NATURE_TYPO,
    Graduate,
    Offer,
)
from agencies.university import University
from agencies.verification import Verifying
from gateway.demo.cast import Cast
from gateway.demo.portal import Account, Handed
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


class Portal(Protocol):
    """Where graduates activate their accounts (``gateway.demo.portal``): its pages, or its services."""

    def activate(self, graduate: Graduate, verification_number: str, password: str) -> Account: ...


@dataclass(frozen=True)
class Step:
    name: str
    description: str
    play: Callable[[Season], None]
    units: Callable[[Season], int] = lambda season: 0


class Season:
    def __init__(
        self,
        cast: Cast,
        graduates: Sequence[Graduate],
        agencies: dict[str, Agency],
        operator: Operator,
        progress: Progress,
        portals: dict[str, Portal],
        passwords: Callable[[], str],
        step_timeout: float = 120.0,
    ) -> None:
        self.cast = cast
        self.graduates = list(graduates)
        self.agencies = agencies  # by participant id
        self.operator = operator
        self.progress = progress
        self.portals = portals  # by how the graduate uses the portal: PORTAL_PAGES, PORTAL_SERVICES
        self.passwords = passwords  # a new password for each graduate's account
        self.step_timeout = step_timeout
        self.played: list[str] = []
        self.accounts: dict[int, Account] = {}  # by graduate index
        self.credentials: dict[int, str] = {}  # the password of each account, by graduate index
        self.handed: dict[int, Handed] = {}  # the grant each graduate gave, by graduate index
        self.lock = threading.Lock()
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

    def offers(self, answered_in: str | None = None) -> list[tuple[Graduate, Offer]]:
        """Every offer (or those the graduate answers ``answered_in`` the portal or through the office)."""
        return [(g, o) for g in self.graduates for o in g.offers if answered_in in (None, o.answered_in)]

    def verifier(self, participant_id: str) -> Verifying:
        return self._agency(participant_id, Verifying)

    def settled(self, offers: list[tuple[Graduate, Offer]]) -> int:
        """How many of ``offers`` have reached the employer's final state for the graduate's answer."""
        final = {"accept": "signed", "refuse": "refused"}
        return sum(
            1 for _, o in offers if self.employer(o.employer.credit_code).state(o.agreement_id) == final[o.decision]
        )

    def with_accounts(self) -> list[Graduate]:
        return [g for g in self.graduates if g.portal is not None]

    def authorising(self) -> list[Graduate]:
        return [g for g in self.graduates if g.authorisation is not None]

    def play(self, steps: Sequence[Step]) -> None:
        for step in steps:
            self.progress.describe(step.description)
            step.play(self)
            self.played.append(step.name)

    def planned_refusals(self) -> Counter[str]:
        """The refusals the steps played provoke on purpose, by fault code."""
        planned: Counter[str] = Counter()
        if "offers" in self.played:
            planned["AGREEMENT_OFFER_EXPIRED"] += sum(1 for _, o in self.offers(TOLD_THE_OFFICE) if o.expired_first)
        if "portal-offers" in self.played:
            planned["AGREEMENT_OFFER_EXPIRED"] += sum(1 for _, o in self.offers(IN_THE_PORTAL) if o.expired_first)
        if "revoked-certificate" in self.played:
            planned["CERT_REVOKED"] += 1
        if "registrations" in self.played:
            planned["CODE_INVALID"] += sum(1 for g in self.graduates if IDENTITY_TYPO in g.mishaps)
            planned["EMPLOYER_UNIT_NATURE_MISMATCH"] += sum(
                1
                for g in self.graduates
                if UNIT_NATURE_TYPO in g.mishaps and (g.registered_first_as or g).employer is not None
            )
        if "archive-transfers" in self.played:
            dispatched = [g for g in self.graduates if ARCHIVE_HELD not in g.mishaps]
            planned["ARCHIVE_RULE_VIOLATION"] += sum(
                1 for g in dispatched if {ORDINARY_POST, GRADUATE_CARRIES} & g.mishaps
            )
            planned["ARCHIVE_INCOMPLETE"] += sum(1 for g in dispatched if TRANSCRIPT_FORGOTTEN in g.mishaps)
        plans = [g.authorisation for g in self.authorising() if g.authorisation is not None]
        if "verify-with-token" in self.played:
            planned["AUTHORISATION_INSUFFICIENT_SCOPE"] += sum(1 for a in plans if a.asks_beyond)
            planned["AUTHORISATION_EXHAUSTED"] += sum(1 for a in plans if a.used_twice)
        if "revoke-grant" in self.played:
            planned["AUTHORISATION_REVOKED"] += sum(1 for a in plans if a.revokes)
        return +planned

    # --- helpers for the steps -----------------------------------------------------------------

    def in_parallel(
        self, items: Iterable[T], action: Callable[[T], object], workers: int = 4, advance: bool = False
    ) -> None:
        """Run ``action`` on every item, a few at a time, as several clerks would; re-raise the first error.

        With ``advance`` the progress moves on by one as each item is done.
        """
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for future in as_completed([pool.submit(action, item) for item in items]):
                future.result()
                if advance:
                    self.progress.advance(1)

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


def expect_refusal(code: str, action: Callable[[], object], what: str) -> None:
    """Run ``action``, which the gateway must refuse with ``code``; any other outcome fails the season."""
    try:
        action()
    except GatewayRefusal as refusal:
        if refusal.code != code:
            raise
    else:
        raise SeasonFailed(f"the gateway accepted {what}, which it should refuse with {code}")
