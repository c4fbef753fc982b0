"""The season's steps of the graduates in the portal, and of the verifiers they authorise.

Graduates activate their accounts (:mod:`gateway.demo.portal`: its pages for the story's few, its
services for the rest), answer offers made from then on in the portal, grant verifiers an
authorisation and hand over the token or the short code; the verifiers verify with it and act on
the signed answer; a graduate revokes a grant and the next request with it is refused.
"""

from __future__ import annotations

from functools import partial

from agencies.records import IN_THE_PORTAL, PORTAL_PAGES, SHORT_CODE, Authorisation, Graduate, Offer
from agencies.verification import Presented, Verification
from gateway.demo.portal import PortalPages
from gateway.demo.season import Season, SeasonFailed, expect_refusal


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
    made = season.offers(IN_THE_PORTAL)
    offers = [(g, o) for g, o in made if o.decision != OPEN]  # an open offer waits for the demo's visitor
    refiling = corrected(season)

    def offer_and_answer(pair: tuple[Graduate, Offer]) -> None:
        graduate, offer = pair
        season.employer(offer.employer.credit_code).offer(graduate, offer)
        if offer.decision == OPEN:
            return
        account = season.accounts.get(graduate.index)
        if not isinstance(account, PortalPages):
            raise SeasonFailed(f"the graduate of {offer.agreement_id} has no account in the portal's pages")
        account.answer_offer(offer.agreement_id, offer.decision == "accept")

    def done() -> int:
        return season.settled(offers) + sum(1 for g in refiling if _refiled(season, g))

    season.in_parallel(made, offer_and_answer)
    season.wait_until(
        "answers from the portal to be reviewed, and registrations corrected", done, len(offers) + len(refiling)
    )


OPEN = "open"  # an offer's decision when the graduate has not answered it (the demo leaves one for its visitor)


def corrected(season: Season) -> list[Graduate]:
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
        plan = authorisation_of(graduate)
        if plan.asks_beyond is not None:
            beyond = (*plan.facts, plan.asks_beyond)
            what = f"a request beyond {graduate.registration_id}'s grant"
            expect_refusal("AUTHORISATION_INSUFFICIENT_SCOPE", partial(_ask, season, graduate, beyond), what)
        _check_answer(graduate, _ask(season, graduate, plan.facts))
        if plan.used_twice:
            what = f"a second use of {graduate.registration_id}'s one-use grant"
            expect_refusal("AUTHORISATION_EXHAUSTED", partial(_ask, season, graduate, plan.facts), what)

    season.in_parallel(season.authorising(), verify, advance=True)


def play_revocations(season: Season) -> None:
    """A graduate whose grant was used revokes it in the portal; the verifier's next request with it is refused."""
    for graduate in [g for g in season.authorising() if authorisation_of(g).revokes]:
        season.accounts[graduate.index].revoke(season.handed[graduate.index].grant_id)
        what = f"a request with {graduate.registration_id}'s revoked grant"
        expect_refusal("AUTHORISATION_REVOKED", partial(_ask, season, graduate, authorisation_of(graduate).facts), what)
        season.progress.advance(1)


def _ask(season: Season, graduate: Graduate, facts: tuple[str, ...]) -> Verification:
    """The graduate's verifier asks the verification service for ``facts``, for the grant's purpose."""
    plan = authorisation_of(graduate)
    verifier = season.verifier(plan.verifier.credit_code)
    presented = _presented(season, graduate)
    return verifier.verify(season.education_department.id, presented, facts, plan.purpose, plan.purpose_text)


def authorisation_of(graduate: Graduate) -> Authorisation:
    if graduate.authorisation is None:
        raise SeasonFailed(f"the graduate of {graduate.registration_id} grants nothing")
    return graduate.authorisation


def _presented(season: Season, graduate: Graduate) -> Presented:
    """What the graduate shows the verifier: the name, a number of the filed registration as it is now
    (the archive's transfer number at an agency, else the verification number), the authorisation;
    at the hukou office's counter also the identity card, whose number ``identity_match`` checks."""
    plan = authorisation_of(graduate)
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
            ("employment_evidence", answer.employment_evidence),
        )
        if value is not None
    }
    if given != set(verification.facts) or answer.identity_match is False:
        raise SeasonFailed(
            f"verification {verification.request_id} of {graduate.registration_id} answered {sorted(given)} "
            f"(identity match {answer.identity_match}), asked {list(verification.facts)}"
        )
