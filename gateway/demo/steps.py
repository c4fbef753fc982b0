"""The season's steps, in the order they are played (:data:`STEPS`), and the agencies' own steps.

The steps of the graduates in the portal (accounts, offers answered there, grants, verifications
with them, a revocation) are :mod:`gateway.demo.graduate_steps`.
"""

from __future__ import annotations

import time

from agencies.records import (
    ARCHIVE_HELD,
    DOCUMENT_DAMAGED,
    IN_THE_PORTAL,
    PARCEL_LOST,
    RECEIVER_REQUESTS,
    TOLD_THE_OFFICE,
    Graduate,
)
from gateway.demo.graduate_steps import (
    authorisation_of,
    corrected,
    play_accounts,
    play_grants,
    play_portal_offers,
    play_revocations,
    play_verifications,
)
from gateway.demo.season import CRL_RELOAD_SECONDS, Season, SeasonFailed, Step, expect_refusal


def play_offers(season: Season) -> None:
    """Employers offer agreements before the registrations are filed; each graduate tells the
    university's office, which relays the answer to the employer and reviews an acceptance."""
    offers = season.offers(TOLD_THE_OFFICE)
    season.in_parallel(offers, lambda pair: season.employer(pair[1].employer.credit_code).offer(*pair))
    season.wait_until("offers to be answered and reviewed", lambda: season.settled(offers), len(offers))


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
    expect_refusal(
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
        lambda s: len(s.offers(IN_THE_PORTAL)) + len(corrected(s)),
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
        lambda s: sum(1 for g in s.authorising() if authorisation_of(g).revokes),
    ),
)
