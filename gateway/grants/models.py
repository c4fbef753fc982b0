"""Grants (a graduate's authorisation of one verifier) and every attempt to use one.

The database is the source of truth for a grant's state and remaining uses; the token only names
the grant (``gateway.grants.tokens``). ``status`` is what the graduate set (active, paused,
revoked); *expired* and *exhausted* are derived from ``expires_at`` and ``uses``
(``gateway.grants.scope.state_of``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.base import Base, UtcDateTime


class Grant(Base):
    __tablename__ = "grants"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # a UUID
    account_id: Mapped[int] = mapped_column(ForeignKey("graduate_accounts.id"), index=True)
    verifier_id: Mapped[str] = mapped_column(ForeignKey("participants.id"), index=True)
    facts: Mapped[str] = mapped_column(String(100))  # comma-separated, in the order of scope.FACTS
    purpose: Mapped[str] = mapped_column(String(32))
    purpose_text: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    max_uses: Mapped[int] = mapped_column(Integer)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(10), index=True)  # active | paused | revoked
    short_code: Mapped[str] = mapped_column(String(16), unique=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class GrantUse(Base):
    """One verification request that presented an authorisation: used, or refused with its fault code.

    ``grant_id`` is empty when the authorisation named no grant (malformed, forged, unknown);
    ``account_id`` is the graduate it concerns: the grant's, or else the graduate the request's
    subject names, if that graduate has an account. ``facts`` are those requested (and, when
    used, disclosed: a request beyond the grant is refused whole).
    """

    __tablename__ = "grant_uses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    grant_id: Mapped[str | None] = mapped_column(ForeignKey("grants.id"), index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("graduate_accounts.id"), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    verifier_id: Mapped[str] = mapped_column(ForeignKey("participants.id"), index=True)
    facts: Mapped[str] = mapped_column(String(100))
    purpose: Mapped[str] = mapped_column(String(32))
    request_id: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(8))  # used | refused
    fault_code: Mapped[str | None] = mapped_column(String(40))
    message_id: Mapped[str | None] = mapped_column(String(36))
    message_pk: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id"), index=True
    )  # the stored request, when used
