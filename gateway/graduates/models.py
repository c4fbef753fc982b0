"""A graduate's portal account, and the index of messages about each graduate.

Neither holds an identity number: ``identity_hash`` is its keyed hash (``gateway.privacy``), the
same one the filed registration, agreements and archive transfers carry.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.base import Base, UtcDateTime


class GraduateAccount(Base):
    """An account activated against a filed destination registration; one per graduate."""

    __tablename__ = "graduate_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    identity_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(200))  # argon2id, in its PHC string form
    registration_pk: Mapped[int] = mapped_column(ForeignKey("registrations.id"), index=True)
    activated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class MessageSubject(Base):
    """Which graduate an accepted (or gateway-originated) business message is about, for their history.

    Written in the message's own transaction; a message about no single graduate has no row.
    """

    __tablename__ = "message_subjects"

    message_pk: Mapped[int] = mapped_column(ForeignKey("messages.id"), primary_key=True)
    identity_hash: Mapped[str] = mapped_column(String(64), index=True)
