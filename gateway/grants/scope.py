"""What a grant allows, its derived state, and the order in which a request is checked against it.

Pure functions, no I/O: ``gateway.grants.enforce`` reads the grant and the graduate's filed
registration, then asks :func:`refusal` whether a verification request may use the grant.

The vocabularies mirror ``schemas/verification-1.xsd`` (``ver:Fact``, ``ver:Purpose``); a test
keeps them in step.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from gateway.errors import (
    AuthorisationExhausted,
    AuthorisationExpired,
    AuthorisationInsufficientScope,
    AuthorisationRevoked,
    AuthorisationSubjectMismatch,
    AuthorisationWrongVerifier,
    Fault,
)

# identity_match: name, number (and identity number, if given) belong together; education: school,
# level, major, graduation date; destination: destination code and employer; archive: who holds the
# archive and how far its transfer has got; employment_evidence: the employer and the signed
# agreement's or labour contract's reference and date (what a household registration office needs
# to settle a graduate, 落户).
SERVICE = "GraduateVerificationRequest"  # the one service a grant authorises
FACTS = ("identity_match", "education", "destination", "archive", "employment_evidence")
PURPOSES = ("settlement", "archive_receipt", "employment_onboarding", "other")
DEFAULT_VALID_DAYS = 7
MAX_VALID_DAYS = 90
DEFAULT_MAX_USES = 1
MAX_USES = 100


class GrantStatus(StrEnum):
    """What the graduate set."""

    ACTIVE = "active"
    PAUSED = "paused"
    REVOKED = "revoked"


class GrantState(StrEnum):
    """What a grant is now: the graduate's status, or expired / exhausted as time and uses say."""

    ACTIVE = "active"
    PAUSED = "paused"
    REVOKED = "revoked"
    EXPIRED = "expired"
    EXHAUSTED = "exhausted"


def state_of(status: str, expires_at: datetime, uses: int, max_uses: int, now: datetime) -> GrantState:
    """The derived state. A revoked grant stays revoked; otherwise an ended validity or used-up uses
    say more than a pause does (resuming would not make the grant usable again)."""
    if status == GrantStatus.REVOKED:
        return GrantState.REVOKED
    if expires_at <= now:
        return GrantState.EXPIRED
    if uses >= max_uses:
        return GrantState.EXHAUSTED
    if status == GrantStatus.PAUSED:
        return GrantState.PAUSED
    return GrantState.ACTIVE


def encode_facts(facts: Iterable[str]) -> str:
    """``facts`` as stored: known facts only, each once, in the order of :data:`FACTS`."""
    chosen = set(facts)
    unknown = chosen - set(FACTS)
    if unknown:
        raise ValueError(f"unknown facts: {', '.join(sorted(unknown))}")
    return ",".join(f for f in FACTS if f in chosen)


def decode_facts(stored: str) -> tuple[str, ...]:
    return tuple(f for f in stored.split(",") if f)


@dataclass(frozen=True)
class Subject:
    """A graduate as a verifier names them: name plus transfer number or verification number."""

    name: str
    transfer_number: str | None = None
    verification_number: str | None = None

    def names(self, filed: Subject) -> bool:
        """True when this subject is ``filed`` (the graduate's filed registration)."""
        if self.name != filed.name:
            return False
        if self.transfer_number is not None:
            return self.transfer_number == filed.transfer_number
        return self.verification_number is not None and self.verification_number == filed.verification_number


@dataclass(frozen=True)
class GrantView:
    """What the checks need of a grant, and of its graduate's filed registration (``subject``)."""

    id: str
    verifier_id: str
    facts: frozenset[str]
    purpose: str
    status: str
    expires_at: datetime
    uses: int
    max_uses: int
    subject: Subject | None  # None: the graduate has no filed registration (any more)


@dataclass(frozen=True)
class Request:
    """What a verification request asks."""

    sender_id: str
    subject: Subject
    facts: frozenset[str]
    purpose: str


def refusal(grant: GrantView, request: Request, now: datetime) -> Fault | None:
    """The first rule ``request`` breaks when it uses ``grant``, or None when it may.

    The order (``docs/domain.md``): the verifier first, so that nobody else learns anything about
    the grant from the answer; then the subject; then the grant's state (revoked, expired,
    exhausted, paused); then the scope (facts, then purpose). The caller has already checked that
    the token is well-formed and names this grant, and counts the use afterwards.
    """
    if request.sender_id != grant.verifier_id:
        return AuthorisationWrongVerifier(
            f"the graduate gave this authorisation to another verifier; {request.sender_id} cannot use it"
        )
    if grant.subject is None or not request.subject.names(grant.subject):
        return AuthorisationSubjectMismatch(
            f"grant {grant.id} was given by another graduate than the one the request names "
            "(name and transfer or verification number of the filed registration)"
        )
    by_state = state_refusal(grant, now)
    if by_state is not None:
        return by_state
    beyond = request.facts - grant.facts
    if beyond:
        return AuthorisationInsufficientScope(
            f"grant {grant.id} allows {', '.join(f for f in FACTS if f in grant.facts)}; "
            f"the request also asks for {', '.join(f for f in FACTS if f in beyond)}"
        )
    if request.purpose != grant.purpose:
        return AuthorisationInsufficientScope(
            f"grant {grant.id} is for the purpose {grant.purpose}, not {request.purpose}"
        )
    return None


def state_refusal(grant: GrantView, now: datetime) -> Fault | None:
    """The fault for a grant that cannot be used now (revoked, expired, exhausted, paused), or None."""
    state = state_of(grant.status, grant.expires_at, grant.uses, grant.max_uses, now)
    if state is GrantState.REVOKED:
        return AuthorisationRevoked(f"grant {grant.id} was revoked by the graduate")
    if state is GrantState.EXPIRED:
        return AuthorisationExpired(f"grant {grant.id} was valid until {_instant(grant.expires_at)}")
    if state is GrantState.EXHAUSTED:
        return AuthorisationExhausted(f"grant {grant.id} allowed {grant.max_uses} use(s), all of them used")
    if state is GrantState.PAUSED:
        return AuthorisationRevoked(
            f"grant {grant.id} is paused by the graduate; it can be used again only if they resume it"
        )
    return None


def _instant(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
