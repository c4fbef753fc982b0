"""The graduation season, as a list of steps played by the agency systems and the graduates against a running gateway.

Each :class:`Step` starts things the way people would (an employer offers, the university
registers, a graduate activates a portal account and grants a verifier, an agency asks for an
archive, a parcel arrives, a clerk verifies a graduate at the counter) and then waits until the
agencies' systems have seen the consequences arrive through the gateway (an offer answered and
reviewed, a registration filed, a manifest received, a receipt returned). The agencies act on
what they receive by themselves; the season only plays the people.

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
from functools import partial
from typing import Protocol, TypeVar

from agencies.base import Agency
from agencies.education_department import EducationDepartment
from agencies.employer import Employer
from agencies.receiving import ArchiveReceivingUnit
from agencies.records import (
    ARCHIVE_HELD,
    DOCUMENT_DAMAGED,
    IDENTITY_TYPO,
    IN_THE_PORTAL,
    ORDINARY_POST,
    PARCEL_LOST,
    PORTAL_PAGES,
    RECEIVER_REQUESTS,
    SHORT_CODE,
    TOLD_THE_OFFICE,
    Authorisation,
    Graduate,
    Offer,
)
from agencies.university import University
from agencies.verification import Presented, Verification, Verifying
from gateway.demo.cast import Cast
from gateway.demo.portal import Account, Handed, PortalPages
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
        if "archive-transfers" in self.played:
            planned["ARCHIVE_RULE_VIOLATION"] += sum(
                1 for g in self.graduates if ORDINARY_POST in g.mishaps and ARCHIVE_HELD not in g.mishaps
            )
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


# --- the steps ----------------------------------------------------------------------------------


def play_offers(season: Season) -> None:
    """Employers offer agreements before the registrations are filed; each graduate tells the
    university's office, which relays the answer to the employer and reviews an acceptance."""
    offers = season.offers(TOLD_THE_OFFICE)
    season.in_parallel(offers, lambda pair: season.employer(pair[1].employer.credit_code).offer(*pair))
    season.wait_until("offers to be answered and reviewed", lambda: _settled(season, offers), len(offers))


def _settled(season: Season, offers: list[tuple[Graduate, Offer]]) -> int:
    final = {"accept": "signed", "refuse": "refused"}
    return sum(
        1 for _, o in offers if season.employer(o.employer.credit_code).state(o.agreement_id) == final[o.decision]
    )


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
    _refused(
        "CERT_REVOKED",
        lambda: victim.request_cancellation(graduate, offer.agreement_id, reason),
        f"a message signed with {victim.id}'s revoked certificate",
    )
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


def play_accounts(season: Season) -> None:
    """The graduates with a part in the portal activate their accounts: identity number, name, the
    verification number of the filed registration, a password. The story's few use the pages, one
    after the other; the rest use the portal's services, two at a time (``gateway.demo.portal`` says why)."""

    def open_account(graduate: Graduate) -> None:
        number = season.university.file(graduate.identity_number).verification_number
        if number is None or graduate.portal is None:
            raise SeasonFailed(f"{graduate.registration_id} has no filed registration to activate an account with")
        password = season.passwords()
        account = season.portals[graduate.portal].activate(graduate, number, password)
        with season.lock:
            season.accounts[graduate.index] = account
            season.credentials[graduate.index] = password

    graduates = season.with_accounts()
    season.in_parallel([g for g in graduates if g.portal == PORTAL_PAGES], open_account, workers=1, advance=True)
    season.in_parallel([g for g in graduates if g.portal != PORTAL_PAGES], open_account, workers=2, advance=True)


def play_portal_offers(season: Season) -> None:
    """Offers made once the graduates have accounts are answered in the portal: the gateway sends the
    answer on to the university and the employer; the university reviews an acceptance and corrects
    the registration of a graduate who was registered before the job came."""
    offers = season.offers(IN_THE_PORTAL)
    corrected = _corrected(season)

    def offer_and_answer(pair: tuple[Graduate, Offer]) -> None:
        graduate, offer = pair
        season.employer(offer.employer.credit_code).offer(graduate, offer)
        account = season.accounts.get(graduate.index)
        if not isinstance(account, PortalPages):
            raise SeasonFailed(f"the graduate of {offer.agreement_id} has no account in the portal's pages")
        account.answer_offer(offer.agreement_id, offer.decision == "accept")

    def done() -> int:
        return _settled(season, offers) + sum(1 for g in corrected if _refiled(season, g))

    season.in_parallel(offers, offer_and_answer)
    season.wait_until(
        "answers from the portal to be reviewed, and registrations corrected", done, len(offers) + len(corrected)
    )


def _corrected(season: Season) -> list[Graduate]:
    """Graduates registered before the job came, whose agreement is answered in the portal."""
    return [
        g
        for g in season.graduates
        if g.registered_first_as is not None
        and any(o.answered_in == IN_THE_PORTAL and o.decision == "accept" for o in g.offers)
    ]


def _refiled(season: Season, graduate: Graduate) -> bool:
    file = season.university.file(graduate.identity_number)
    return file.registration == "filed" and file.registered_as == graduate


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


def play_grants(season: Season) -> None:
    """Graduates grant a verifier an authorisation in the portal: the facts it may see, the purpose,
    the validity and the uses; each keeps the token and the short code it yields."""

    def grant(graduate: Graduate) -> None:
        account = season.accounts.get(graduate.index)
        if account is None or graduate.authorisation is None:
            raise SeasonFailed(f"the graduate of {graduate.registration_id} has no account to grant from")
        handed = account.grant(graduate.authorisation)
        with season.lock:
            season.handed[graduate.index] = handed

    season.in_parallel(season.authorising(), grant, workers=2, advance=True)


def play_verifications(season: Season) -> None:
    """Each verifier verifies the graduates who authorised it, with the token or the short code they
    handed over, and acts on the gateway's signed answer (settles, takes on, opens the file). A clerk
    who asks for more than was granted is refused and asks again for what was granted; a verifier
    that checks again with a one-use grant finds it used up."""

    def verify(graduate: Graduate) -> None:
        plan = _plan(graduate)
        if plan.asks_beyond is not None:
            beyond = (*plan.facts, plan.asks_beyond)
            what = f"a request beyond {graduate.registration_id}'s grant"
            _refused("AUTHORISATION_INSUFFICIENT_SCOPE", partial(_ask, season, graduate, beyond), what)
        _check_answer(graduate, _ask(season, graduate, plan.facts))
        if plan.used_twice:
            what = f"a second use of {graduate.registration_id}'s one-use grant"
            _refused("AUTHORISATION_EXHAUSTED", partial(_ask, season, graduate, plan.facts), what)

    season.in_parallel(season.authorising(), verify, advance=True)


def play_revocations(season: Season) -> None:
    """A graduate whose grant was used revokes it in the portal; the verifier's next request with it is refused."""
    for graduate in [g for g in season.authorising() if _plan(g).revokes]:
        season.accounts[graduate.index].revoke(season.handed[graduate.index].grant_id)
        what = f"a request with {graduate.registration_id}'s revoked grant"
        _refused("AUTHORISATION_REVOKED", partial(_ask, season, graduate, _plan(graduate).facts), what)
        season.progress.advance(1)


def _ask(season: Season, graduate: Graduate, facts: tuple[str, ...]) -> Verification:
    """The graduate's verifier asks the verification service for ``facts``, for the grant's purpose."""
    plan = _plan(graduate)
    verifier = season.verifier(plan.verifier.credit_code)
    presented = _presented(season, graduate)
    return verifier.verify(season.education_department.id, presented, facts, plan.purpose, plan.purpose_text)


def _plan(graduate: Graduate) -> Authorisation:
    if graduate.authorisation is None:
        raise SeasonFailed(f"the graduate of {graduate.registration_id} grants nothing")
    return graduate.authorisation


def _presented(season: Season, graduate: Graduate) -> Presented:
    """What the graduate shows the verifier: the name, a number of the filed registration as it is now
    (the archive's transfer number at an agency, else the verification number), the authorisation;
    at the hukou office's counter also the identity card, whose number ``identity_match`` checks."""
    plan = _plan(graduate)
    file = season.university.file(graduate.identity_number)
    handed = season.handed[graduate.index]
    authorisation = handed.short_code if plan.hand_over == SHORT_CODE else handed.token
    if plan.purpose == "archive_receipt":
        return Presented(graduate.name, authorisation, transfer_number=file.transfer_number)
    identity = graduate.identity_number if plan.purpose == "settlement" else None
    return Presented(
        graduate.name, authorisation, verification_number=file.verification_number, identity_number=identity
    )


def _check_answer(graduate: Graduate, verification: Verification) -> None:
    """The verifier got exactly the facts it asked for (and the graduate granted), and the person is the graduate."""
    answer = verification.answer
    if answer is None:
        raise SeasonFailed(f"verification {verification.request_id} was not answered")
    given = {
        fact
        for fact, value in (
            ("identity_match", answer.identity_match),
            ("education", answer.education),
            ("destination", answer.destination),
            ("archive", answer.archive),
        )
        if value is not None
    }
    if given != set(verification.facts) or answer.identity_match is False:
        raise SeasonFailed(
            f"verification {verification.request_id} of {graduate.registration_id} answered {sorted(given)} "
            f"(identity match {answer.identity_match}), asked {list(verification.facts)}"
        )


def _refused(code: str, action: Callable[[], object], what: str) -> None:
    """Run ``action``, which the gateway must refuse with ``code``; any other outcome fails the season."""
    try:
        action()
    except GatewayRefusal as refusal:
        if refusal.code != code:
            raise
    else:
        raise SeasonFailed(f"the gateway accepted {what}, which it should refuse with {code}")


STEPS: tuple[Step, ...] = (
    Step(
        "offers",
        "employers offer agreements; graduates answer through the university, which reviews",
        play_offers,
        lambda s: len(s.offers(TOLD_THE_OFFICE)),
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
        "accounts",
        "graduates activate their portal accounts",
        play_accounts,
        lambda s: len(s.with_accounts()),
    ),
    Step(
        "portal-offers",
        "later offers are answered in the portal; the university reviews and corrects registrations",
        play_portal_offers,
        lambda s: len(s.offers(IN_THE_PORTAL)) + len(_corrected(s)),
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
    Step(
        "grant",
        "graduates grant verifiers authorisations in the portal",
        play_grants,
        lambda s: len(s.authorising()),
    ),
    Step(
        "verify-with-token",
        "the hukou office, employers and agencies verify graduates with their tokens or short codes",
        play_verifications,
        lambda s: len(s.authorising()),
    ),
    Step(
        "revoke-grant",
        "a graduate revokes a grant; the next verification with it is refused",
        play_revocations,
        lambda s: sum(1 for g in s.authorising() if _plan(g).revokes),
    ),
)
