"""Adding, listing and disabling staff accounts, and signing them in (with audit entries for every sign-in)."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.audit.entries import AuditEvent
from gateway.audit.log import record
from gateway.errors import NotFound, ValidationError
from gateway.passwords import WeakPassword, hash_password, needs_rehash, verify_password
from gateway.staff.models import Role, StaffUser

USERNAME = re.compile(r"^[a-z][a-z0-9._-]{2,63}$")


def add_user(session: Session, username: str, role: str, password: str, now: datetime) -> StaffUser:
    """A new enabled account; raises :class:`ValidationError` for a bad name, role, password or a taken name."""
    if not USERNAME.match(username):
        raise ValidationError("username", "3-64 characters: lower-case letters, digits, '.', '_' or '-', from a letter")
    if role not in {r.value for r in Role}:
        raise ValidationError("role", f"one of {', '.join(r.value for r in Role)}")
    if session.scalar(select(StaffUser.id).where(StaffUser.username == username)) is not None:
        raise ValidationError("username", f"{username} exists already")
    try:
        password_hash = hash_password(password)
    except WeakPassword as exc:
        raise ValidationError("password", str(exc)) from None
    user = StaffUser(username=username, role=role, password_hash=password_hash, enabled=True, created_at=now)
    session.add(user)
    session.flush()
    record(session, AuditEvent("staff.user_added", now, {"username": username, "role": role}))
    return user


def set_enabled(session: Session, username: str, enabled: bool, now: datetime) -> StaffUser:
    user = session.scalar(select(StaffUser).where(StaffUser.username == username))
    if user is None:
        raise NotFound(f"no staff user {username}")
    user.enabled = enabled
    kind = "staff.user_enabled" if enabled else "staff.user_disabled"
    record(session, AuditEvent(kind, now, {"username": username, "role": user.role}))
    return user


def users(session: Session) -> list[StaffUser]:
    return list(session.scalars(select(StaffUser).order_by(StaffUser.username)))


def authenticate(session: Session, username: str, password: str, now: datetime, client: str) -> StaffUser | None:
    """The account if the password matches and it is enabled, else None (one answer for every reason).

    Both outcomes are audit entries (``staff.signed_in`` / ``staff.sign_in_refused`` with the reason
    and the client address) in ``session``'s transaction: the caller commits a refusal too.
    """
    user = session.scalar(select(StaffUser).where(StaffUser.username == username))
    matches = verify_password(user.password_hash if user else None, password)
    if user is None or not matches or not user.enabled:
        reason = "unknown user" if user is None else "wrong password" if not matches else "disabled"
        record(
            session,
            AuditEvent(
                "staff.sign_in_refused",
                now,
                {"username": username[:64], "reason": reason, "client": client},
            ),
        )
        return None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_sign_in_at = now
    record(session, AuditEvent("staff.signed_in", now, {"username": username, "role": user.role, "client": client}))
    return user


def signed_out(session: Session, user_id: int, now: datetime) -> None:
    user = session.get(StaffUser, user_id)
    if user is not None:
        record(session, AuditEvent("staff.signed_out", now, {"username": user.username, "role": user.role}))
