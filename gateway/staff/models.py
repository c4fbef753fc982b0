"""A staff account: a username, a role and an argon2id password hash (``gateway.passwords``)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.base import Base, UtcDateTime


class Role(StrEnum):
    """Auditors read the exchange log and export evidence; administrators run the gateway.

    The roles are apart on purpose: an administrator cannot read the auditor UI and an auditor
    changes nothing, so that the people who run the system are not the ones who check it.
    """

    AUDITOR = "auditor"
    ADMINISTRATOR = "administrator"


class StaffUser(Base):
    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
