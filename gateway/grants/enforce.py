"""The graduate's authorisation, enforced on every ``GraduateVerificationRequest`` at the intake.

``GraduateVerificationRules.check`` runs in the intake transaction before the request is stored:

1. the ``AuthorisationToken`` is there (``AUTHORISATION_MISSING``);
2. it is a grant token whose ES256 signature verifies, or a short code, and it names a grant
   (``AUTHORISATION_INVALID``). A short code is looked up among the sender's own grants only, so a
   code granted to another verifier answers exactly like a code that does not exist (same fault,
   same text, same queries); wrong short codes are counted per verifier and per client address
   and, past the limit, every short code is refused first (``AUTHORISATION_THROTTLED``,
   :mod:`gateway.grants.throttle`);
3. then :func:`gateway.grants.scope.refusal`: the sender is the grant's verifier, the subject is
   the grant's graduate, the grant is not revoked, expired, used up or paused, and the facts and
   purpose are within it;
4. the use is counted by one conditional UPDATE (``uses < max_uses``, still active, not expired):
   of two concurrent requests for the last use, the second waits for the first's row lock
   (PostgreSQL) or its turn (SQLite), then changes nothing and is refused ``AUTHORISATION_EXHAUSTED``.

A refusal rolls the intake transaction back (nothing stored, no use counted), so the refused
attempt is recorded afterwards in a transaction of its own, through the fault's ``on_refusal``
(``gateway.intake.views``): a :class:`GrantUse` ``refused`` and a ``grant.refused`` audit entry.
``apply`` (after the request is stored, same transaction) records the :class:`GrantUse` ``used``
and a ``grant.used`` audit entry. Neither ever holds an identity number.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from lxml import etree
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from gateway.audit.entries import AuditEvent
from gateway.audit.log import record
from gateway.domain.documents import NS, text
from gateway.domain.message import DomainMessage
from gateway.errors import (
    AuthorisationExhausted,
    AuthorisationInvalid,
    AuthorisationMissing,
    AuthorisationThrottled,
    Fault,
)
from gateway.graduates.models import GraduateAccount
from gateway.grants import scope
from gateway.grants.models import Grant, GrantUse
from gateway.grants.scope import GrantStatus, GrantView, Subject
from gateway.grants.throttle import ShortCodeThrottle
from gateway.grants.tokens import GrantTokens, normalise_short_code
from gateway.notices.record import notify
from gateway.registrations.models import Registration, RegistrationStatus
from gateway.registrations.rules import filed_registration


@dataclass(frozen=True)
class VerificationRequest:
    """What a ``ver:GraduateVerificationRequest`` asks (read from the verified Body)."""

    request_id: str
    subject: Subject
    identity_number: str | None
    facts: frozenset[str]
    purpose: str
    purpose_text: str | None
    token: str | None

    @classmethod
    def read(cls, document: etree._Element) -> VerificationRequest:
        return cls(
            request_id=text(document, "ver:RequestId") or "",
            subject=Subject(
                name=text(document, "ver:Subject/ver:Name") or "",
                transfer_number=text(document, "ver:Subject/ver:TransferNumber"),
                verification_number=text(document, "ver:Subject/ver:VerificationNumber"),
            ),
            identity_number=text(document, "ver:Subject/ver:IdentityNumber"),
            facts=frozenset((f.text or "").strip() for f in document.iterfind("ver:RequestedFacts/ver:Fact", NS)),
            purpose=text(document, "ver:Purpose") or "",
            purpose_text=text(document, "ver:PurposeText"),
            token=text(document, "ver:AuthorisationToken"),
        )


@dataclass(frozen=True)
class Attempt:
    """One use of an authorisation, as recorded: plain values, so it outlives a rolled-back transaction."""

    grant_id: str | None
    account_id: int | None
    verifier_id: str
    facts: str
    purpose: str
    request_id: str | None
    message_id: str | None
    at: datetime


def record_attempt(
    session: Session, attempt: Attempt, fault_code: str | None, message_id: str | None, message_pk: int | None = None
) -> None:
    """A :class:`GrantUse` and its audit entry: ``grant.used`` without a fault code, ``grant.refused`` with one."""
    outcome = "used" if fault_code is None else "refused"
    session.add(
        GrantUse(
            grant_id=attempt.grant_id,
            account_id=attempt.account_id,
            at=attempt.at,
            verifier_id=attempt.verifier_id,
            facts=attempt.facts,
            purpose=attempt.purpose,
            request_id=attempt.request_id,
            outcome=outcome,
            fault_code=fault_code,
            message_id=message_id,
            message_pk=message_pk,
        )
    )
    record(
        session,
        AuditEvent(
            kind=f"grant.{outcome}",
            at=attempt.at,
            message_id=message_id,
            facts={
                "grant": attempt.grant_id,
                "account": attempt.account_id,
                "verifier": attempt.verifier_id,
                "facts": attempt.facts,
                "purpose": attempt.purpose,
                "message_id": message_id,
                "fault": fault_code,
            },
        ),
    )
    if attempt.account_id is not None:  # the graduate hears of every use and refused attempt
        notify(
            session,
            f"grant_{outcome}",
            attempt.at,
            account_id=attempt.account_id,
            message_id=message_id,
            facts={
                "grant": attempt.grant_id,
                "verifier": attempt.verifier_id,
                "facts": attempt.facts,
                "purpose": attempt.purpose,
                "fault": fault_code,
            },
        )


def refusal_recorder(attempt: Attempt, fault: Fault) -> Callable[[Session], None]:
    """What the intake runs, in the refusal's own transaction, to keep the refused attempt."""

    def record_refusal(session: Session) -> None:
        # The pipeline names the message on the fault after the stage raised it.
        record_attempt(session, attempt, fault.code, fault.message_id or attempt.message_id)

    return record_refusal


@dataclass(frozen=True)
class GraduateVerificationRules:
    """The service rules of ``GraduateVerificationRequest`` (``gateway.domain.services``)."""

    tokens: GrantTokens
    short_codes: ShortCodeThrottle

    def check(self, message: DomainMessage, session: Session) -> None:
        """Enforce the authorisation and count the use; raises the authorisation faults."""
        request = VerificationRequest.read(message.document)
        grant: Grant | None = None
        try:
            grant = self.grant_named(
                request.token, message.sender.id, session, count_failures=True, client=message.client
            )
            fault = scope.refusal(
                grant_view(session, grant),
                scope.Request(message.sender.id, request.subject, request.facts, request.purpose),
                message.received_at,
            )
            if fault is not None:
                raise fault
            count_use(session, grant, message.received_at)
        except Fault as fault:
            attempt = self._attempt(message, request, session, grant)
            fault.on_refusal = refusal_recorder(attempt, fault)
            raise

    def apply(self, message: DomainMessage, session: Session) -> None:
        """Record the use (the request is stored now, and the use counted by ``check``)."""
        request = VerificationRequest.read(message.document)
        grant = self.grant_named(request.token, message.sender.id, session)
        attempt = self._attempt(message, request, session, grant)
        record_attempt(session, attempt, None, message.message_id, message.message_pk)

    def grant_named(
        self,
        token: str | None,
        sender_id: str,
        session: Session,
        count_failures: bool = False,
        client: str | None = None,
    ) -> Grant:
        """The grant ``token`` (a grant token or a short code of ``sender_id``'s) names; raises the token's faults.

        With ``count_failures``, a short code that names no grant of the sender counts against the
        sender and the client address ``client``, and a throttled sender or address is refused before any look-up.
        """
        if token is None:
            raise AuthorisationMissing(
                "a verification request needs the graduate's authorisation in AuthorisationToken: "
                "the grant token or the short code the graduate gave you"
            )
        code = normalise_short_code(token)
        if code is not None:
            if count_failures and not self.short_codes.allows(sender_id, client):
                raise AuthorisationThrottled(
                    "too many short codes that name no authorisation came from this participant or address: "
                    "try again later, or ask the graduate for the grant token"
                )
            grant = session.scalar(select(Grant).where(Grant.short_code == code, Grant.verifier_id == sender_id))
            if grant is None:
                if count_failures:
                    self.short_codes.failed(sender_id, client)
                raise AuthorisationInvalid("no authorisation has this short code")
            return grant
        if token.count(".") != 2:
            raise AuthorisationInvalid("AuthorisationToken is neither a grant token (a compact JWS) nor a short code")
        claims = self.tokens.read(token)
        grant = session.get(Grant, claims.grant_id)
        if grant is None or grant.verifier_id != claims.audience:
            raise AuthorisationInvalid(f"the token names no grant the gateway holds ({claims.grant_id})")
        return grant

    @staticmethod
    def _attempt(
        message: DomainMessage, request: VerificationRequest, session: Session, grant: Grant | None
    ) -> Attempt:
        account_id = grant.account_id if grant is not None else subject_account(session, request.subject)
        return Attempt(
            grant_id=grant.id if grant is not None else None,
            account_id=account_id,
            verifier_id=message.sender.id,
            facts=scope.encode_facts(request.facts),
            purpose=request.purpose,
            request_id=request.request_id,
            message_id=message.message_id,
            at=message.received_at,
        )


def grant_view(session: Session, grant: Grant) -> GrantView:
    """``grant`` with its graduate's filed registration, for :func:`gateway.grants.scope.refusal`."""
    account = session.get(GraduateAccount, grant.account_id)
    filed = filed_registration(session, account.identity_hash) if account is not None else None
    return GrantView(
        id=grant.id,
        verifier_id=grant.verifier_id,
        facts=frozenset(scope.decode_facts(grant.facts)),
        purpose=grant.purpose,
        status=grant.status,
        expires_at=grant.expires_at,
        uses=grant.uses,
        max_uses=grant.max_uses,
        subject=Subject(filed.name, filed.transfer_number, filed.verification_number) if filed else None,
    )


def count_use(session: Session, grant: Grant, now: datetime) -> None:
    """Take one use of ``grant`` atomically; raises the fault of its state if none is left to take."""
    taken = session.execute(
        update(Grant)
        .where(
            Grant.id == grant.id,
            Grant.status == GrantStatus.ACTIVE.value,
            Grant.uses < Grant.max_uses,
            Grant.expires_at > now,
        )
        .values(uses=Grant.uses + 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount == 1:  # type: ignore[attr-defined]
        session.expire(grant)
        return
    # Another request took the last use (or the graduate acted) since the grant was read.
    fresh = session.execute(select(Grant).where(Grant.id == grant.id).execution_options(populate_existing=True))
    fault = scope.state_refusal(grant_view(session, fresh.scalar_one()), now)
    raise fault or AuthorisationExhausted(f"grant {grant.id}: its last use was just taken by another request")


def subject_account(session: Session, subject: Subject) -> int | None:
    """The account of the graduate a request names (name and number of a filed registration), if any."""
    numbers = [
        condition
        for condition in (
            Registration.transfer_number == subject.transfer_number if subject.transfer_number else None,
            Registration.verification_number == subject.verification_number if subject.verification_number else None,
        )
        if condition is not None
    ]
    if not subject.name or not numbers:
        return None
    identity_hash = session.scalar(
        select(Registration.identity_hash)
        .where(Registration.status == RegistrationStatus.FILED, Registration.name == subject.name, or_(*numbers))
        .limit(1)
    )
    if identity_hash is None:
        return None
    return session.scalar(select(GraduateAccount.id).where(GraduateAccount.identity_hash == identity_hash))
