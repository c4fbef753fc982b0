"""A graduate's grants: create, revoke, pause, resume, list; and who may be granted.

Every function works in the caller's transaction and records its audit entry there
(``grant.created``, ``grant.revoked``, ``grant.paused``, ``grant.resumed``: ids, verifier, facts,
purpose and limits, never an identity number). A graduate acts only on their own grants: another
graduate's grant is refused exactly as one that does not exist.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.access.rules import load_rules
from gateway.access.services import overrides_for
from gateway.audit.entries import AuditEvent
from gateway.audit.log import record
from gateway.errors import GrantInvalid, GrantRefused
from gateway.graduates.models import GraduateAccount
from gateway.grants import scope
from gateway.grants.models import Grant
from gateway.grants.scope import SERVICE, GrantState, GrantStatus, state_of
from gateway.grants.tokens import GrantTokens, display_short_code, new_short_code
from gateway.registry.models import Participant

MAX_PURPOSE_TEXT = 500


@dataclass(frozen=True)
class IssuedGrant:
    """A new grant with what the graduate hands the verifier: the token and the short code (``ABCD-EFGH``)."""

    grant: Grant
    token: str
    short_code: str


@dataclass(frozen=True)
class GrantSummary:
    """A grant as its graduate sees it: with its derived state and the verifier's name."""

    grant: Grant
    state: GrantState
    verifier_name: str
    facts: tuple[str, ...]
    uses_left: int
    short_code: str  # for display, ABCD-EFGH


def may_verify(session: Session, participant: Participant) -> bool:
    """Whether ``participant`` may send verification requests at all (access matrix and overrides).

    A denial override for the service (towards anyone) excludes it; a grant override admits it;
    otherwise its kind must be a sender kind of a matrix rule for the service.
    """
    if not participant.enabled:
        return False
    overrides = [o for o in overrides_for(session, participant.id) if o.service in (SERVICE, "*")]
    if any(o.effect == "deny" and o.counterpart_id is None for o in overrides):
        return False
    if any(o.effect == "grant" for o in overrides):
        return True
    return any(r.service == SERVICE and participant.kind in r.sender_kinds for r in load_rules())


def eligible_verifiers(session: Session) -> list[Participant]:
    """Every participant a graduate may grant, by name (for the portal's choice of verifier)."""
    found = session.scalars(select(Participant).where(Participant.enabled.is_(True)).order_by(Participant.name))
    return [p for p in found if may_verify(session, p)]


def create_grant(
    session: Session,
    tokens: GrantTokens,
    account: GraduateAccount,
    verifier_id: str,
    facts: Iterable[str],
    purpose: str,
    purpose_text: str | None,
    now: datetime,
    valid_days: int = scope.DEFAULT_VALID_DAYS,
    max_uses: int = scope.DEFAULT_MAX_USES,
) -> IssuedGrant:
    """Grant ``verifier_id`` the ``facts`` for ``purpose``, valid ``valid_days`` days and ``max_uses`` uses.

    Raises :class:`GrantInvalid` naming the field: ``verifier`` (unknown, disabled, or not allowed
    to send verification requests), ``facts`` (none, or unknown), ``purpose`` (unknown),
    ``purpose_text`` (required for ``other``; at most 500 characters), ``valid_days`` (1 to 90),
    ``max_uses`` (1 to 100).
    """
    verifier = session.get(Participant, verifier_id.strip().upper())
    if verifier is None:
        raise GrantInvalid("verifier", "no such participant in the directory")
    if not may_verify(session, verifier):
        raise GrantInvalid("verifier", f"{verifier.name} cannot send verification requests")
    chosen = set(facts)
    if not chosen:
        raise GrantInvalid("facts", "choose at least one fact the verifier may see")
    try:
        stored_facts = scope.encode_facts(chosen)
    except ValueError as exc:
        raise GrantInvalid("facts", str(exc)) from None
    if purpose not in scope.PURPOSES:
        raise GrantInvalid("purpose", f"must be one of {', '.join(scope.PURPOSES)}")
    text = (purpose_text or "").strip() or None
    if purpose == "other" and text is None:
        raise GrantInvalid("purpose_text", "say what the verification is for")
    if text is not None and len(text) > MAX_PURPOSE_TEXT:
        raise GrantInvalid("purpose_text", f"at most {MAX_PURPOSE_TEXT} characters")
    if not 1 <= valid_days <= scope.MAX_VALID_DAYS:
        raise GrantInvalid("valid_days", f"from 1 to {scope.MAX_VALID_DAYS} days")
    if not 1 <= max_uses <= scope.MAX_USES:
        raise GrantInvalid("max_uses", f"from 1 to {scope.MAX_USES} uses")
    grant = Grant(
        id=str(uuid.uuid4()),
        account_id=account.id,
        verifier_id=verifier.id,
        facts=stored_facts,
        purpose=purpose,
        purpose_text=text,
        created_at=now,
        expires_at=now + timedelta(days=valid_days),
        max_uses=max_uses,
        uses=0,
        status=GrantStatus.ACTIVE.value,
        short_code=_unused_short_code(session),
        updated_at=now,
    )
    session.add(grant)
    session.flush()
    _audit(session, "grant.created", grant, now, expires_at=_instant(grant.expires_at), max_uses=max_uses)
    return IssuedGrant(grant, token_for(tokens, grant), display_short_code(grant.short_code))


def token_for(tokens: GrantTokens, grant: Grant) -> str:
    """A token for ``grant`` (made again on demand; each one made is valid)."""
    return tokens.issue(grant.id, grant.verifier_id, grant.created_at, grant.expires_at)


def grants_of(session: Session, account: GraduateAccount, now: datetime) -> list[GrantSummary]:
    """The account's grants, newest first, each with its state now."""
    rows = session.execute(
        select(Grant, Participant.name)
        .join(Participant, Participant.id == Grant.verifier_id)
        .where(Grant.account_id == account.id)
        .order_by(Grant.created_at.desc(), Grant.id)
    )
    return [summarise(grant, name, now) for grant, name in rows]


def grant_of(session: Session, account: GraduateAccount, grant_id: str, now: datetime) -> GrantSummary:
    """One of the account's grants; raises :class:`GrantRefused` ``not_found`` for any other id."""
    grant = _own(session, account, grant_id)
    verifier = session.get(Participant, grant.verifier_id)
    return summarise(grant, verifier.name if verifier else grant.verifier_id, now)


def summarise(grant: Grant, verifier_name: str, now: datetime) -> GrantSummary:
    return GrantSummary(
        grant=grant,
        state=state_of(grant.status, grant.expires_at, grant.uses, grant.max_uses, now),
        verifier_name=verifier_name,
        facts=scope.decode_facts(grant.facts),
        uses_left=max(grant.max_uses - grant.uses, 0),
        short_code=display_short_code(grant.short_code),
    )


def revoke(session: Session, account: GraduateAccount, grant_id: str, now: datetime) -> Grant:
    """Revoke for good (also a paused, expired or used-up grant); ``already_revoked`` otherwise."""
    grant = _own(session, account, grant_id)
    if grant.status == GrantStatus.REVOKED:
        raise GrantRefused("already_revoked", "This authorisation is already revoked.")
    grant.status = GrantStatus.REVOKED.value
    grant.revoked_at = now
    grant.updated_at = now
    _audit(session, "grant.revoked", grant, now)
    return grant


def pause(session: Session, account: GraduateAccount, grant_id: str, now: datetime) -> Grant:
    """Stop an active grant until resumed; ``not_active`` (naming its state) otherwise."""
    grant = _own(session, account, grant_id)
    state = state_of(grant.status, grant.expires_at, grant.uses, grant.max_uses, now)
    if state is not GrantState.ACTIVE:
        raise GrantRefused("not_active", f"Only an active authorisation can be paused; this one is {state}.")
    grant.status = GrantStatus.PAUSED.value
    grant.updated_at = now
    _audit(session, "grant.paused", grant, now)
    return grant


def resume(session: Session, account: GraduateAccount, grant_id: str, now: datetime) -> Grant:
    """Make a paused grant active again; ``not_paused`` (naming its state) otherwise."""
    grant = _own(session, account, grant_id)
    state = state_of(grant.status, grant.expires_at, grant.uses, grant.max_uses, now)
    if state is not GrantState.PAUSED:
        raise GrantRefused("not_paused", f"Only a paused authorisation can be resumed; this one is {state}.")
    grant.status = GrantStatus.ACTIVE.value
    grant.updated_at = now
    _audit(session, "grant.resumed", grant, now)
    return grant


def _own(session: Session, account: GraduateAccount, grant_id: str) -> Grant:
    grant = session.get(Grant, grant_id)
    if grant is None or grant.account_id != account.id:
        raise GrantRefused("not_found", "There is no such authorisation among yours.")
    return grant


def _unused_short_code(session: Session) -> str:
    for _ in range(10):  # 31^8 codes: a collision is rare, ten in a row impossible in practice
        code = new_short_code()
        if session.scalar(select(Grant.id).where(Grant.short_code == code)) is None:
            return code
    raise RuntimeError("could not find an unused short code")


def _audit(session: Session, kind: str, grant: Grant, now: datetime, **extra: str | int) -> None:
    record(
        session,
        AuditEvent(
            kind=kind,
            at=now,
            facts={
                "grant": grant.id,
                "account": grant.account_id,
                "verifier": grant.verifier_id,
                "facts": grant.facts,
                "purpose": grant.purpose,
                **extra,
            },
        ),
    )


def _instant(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
