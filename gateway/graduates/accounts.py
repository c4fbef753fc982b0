"""Activating a graduate's account against their filed registration, and signing in.

Passwords are hashed by ``gateway.passwords`` (argon2id, as for every account). Refusals are
:class:`~gateway.errors.ActivationRefused` and :class:`~gateway.errors.SignInRefused` with a code and
a message to show as it is. Neither says which of several details was wrong: an activation that
matches no filed registration gets one message whatever the mismatch, and a sign-in gets one
message whether the account exists or not (``verify_password`` costs the same then). Rate limiting
is the portal's; nothing here locks an account.
"""

from __future__ import annotations

import hmac
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.audit.entries import AuditEvent
from gateway.audit.log import record
from gateway.errors import ActivationRefused, SignInRefused
from gateway.graduates.models import GraduateAccount
from gateway.passwords import WeakPassword, check_strength, hash_password, needs_rehash, verify_password
from gateway.privacy import IdentityHasher, is_identity_number
from gateway.registrations.rules import filed_registration

NO_MATCH = (
    "No filed destination registration matches this identity number, name and verification number. "
    "Check them against your filed registration, or ask your university's employment office."
)
SIGN_IN_FAILED = "The identity number or the password is wrong, or the account is not activated yet."


def _identity(identity_number: str) -> str | None:
    number = identity_number.strip().upper()
    return number if is_identity_number(number) else None


def check_password(password: str, *secrets_not_allowed: str) -> None:
    """Raise :class:`ActivationRefused` ``password_too_weak`` unless ``password`` is acceptable.

    The rules of every account (``gateway.passwords``), and not the graduate's own numbers.
    """
    try:
        check_strength(password)
    except WeakPassword as exc:
        raise ActivationRefused("password_too_weak", f"Choose another password: {exc}.") from None
    lowered = password.casefold()
    if any(s and s.casefold() in lowered for s in secrets_not_allowed):
        raise ActivationRefused(
            "password_too_weak", "The password must not contain your identity number or verification number."
        )


def activate(
    session: Session,
    hasher: IdentityHasher,
    identity_number: str,
    name: str,
    verification_number: str,
    password: str,
    now: datetime,
) -> GraduateAccount:
    """Create the graduate's account, bound to their filed registration.

    Raises :class:`ActivationRefused` with code ``identity_number_invalid`` (not a valid resident
    identity number), ``password_too_weak``, ``no_match`` (no filed registration with this identity
    number, name and verification number: one message for any mismatch) or ``already_activated``.
    """
    number = _identity(identity_number)
    if number is None:
        raise ActivationRefused(
            "identity_number_invalid", "This is not a valid resident identity number (18 characters, check character)."
        )
    given_verification = verification_number.strip().upper()
    check_password(password, number, given_verification)
    identity_hash = hasher(number)
    registration = filed_registration(session, identity_hash)
    if (
        registration is None
        or registration.name != name.strip()
        or not hmac.compare_digest((registration.verification_number or "").encode(), given_verification.encode())
    ):
        raise ActivationRefused("no_match", NO_MATCH)
    if session.scalar(select(GraduateAccount.id).where(GraduateAccount.identity_hash == identity_hash)) is not None:
        raise ActivationRefused("already_activated", "This graduate's account is already activated: sign in instead.")
    account = GraduateAccount(
        identity_hash=identity_hash,
        name=registration.name,
        password_hash=hash_password(password),
        registration_pk=registration.id,
        activated_at=now,
    )
    try:
        with session.begin_nested():  # a concurrent activation of the same graduate loses here
            session.add(account)
    except IntegrityError:
        raise ActivationRefused(
            "already_activated", "This graduate's account is already activated: sign in instead."
        ) from None
    record(
        session,
        AuditEvent(
            kind="graduate.activated",
            at=now,
            facts={
                "account": account.id,
                "registration": registration.registration_id,
                "university": registration.university_id,
            },
        ),
    )
    return account


def authenticate(
    session: Session, hasher: IdentityHasher, identity_number: str, password: str, now: datetime
) -> GraduateAccount:
    """The account of ``identity_number`` if ``password`` is its password; raises :class:`SignInRefused`."""
    number = _identity(identity_number)
    account = None
    if number is not None:
        account = session.scalar(select(GraduateAccount).where(GraduateAccount.identity_hash == hasher(number)))
    if not verify_password(account.password_hash if account else None, password) or account is None:
        raise SignInRefused("sign_in_failed", SIGN_IN_FAILED)
    if needs_rehash(account.password_hash):
        account.password_hash = hash_password(password)
    account.last_sign_in_at = now
    return account


def account_by_id(session: Session, account_id: int) -> GraduateAccount | None:
    """The account a portal session names (by its id), if it still exists."""
    return session.get(GraduateAccount, account_id)
