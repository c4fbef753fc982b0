"""A notice to a graduate, the e-mail address they confirmed, and the e-mails sent.

A notice is keyed by the graduate's keyed identity hash (registrations, archives and offers happen
before a portal account may exist) or by their account (grant uses); the portal shows a graduate
the notices under either. No identity number is ever stored: ``facts`` holds ids, numbers of
documents and names of organisations only.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.base import Base, UtcDateTime


class MailState:
    """Where a notice stands with e-mail: the sweep turns ``new`` into ``mailed`` or ``no_address``."""

    NEW = "new"  # not looked at by the sweep yet
    NOT_MAILED = "not_mailed"  # a kind that is shown in the portal only
    NO_ADDRESS = "no_address"  # no confirmed address (or e-mail is off) when the sweep looked
    MAILED = "mailed"  # an OutgoingMail row carries it


class Notice(Base):
    __tablename__ = "graduate_notices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    identity_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("graduate_accounts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    message_id: Mapped[str | None] = mapped_column(String(36))
    facts: Mapped[str] = mapped_column(Text)  # JSON object
    read_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    mail_state: Mapped[str] = mapped_column(String(12), index=True)


class MailStatus:
    PENDING = "pending"  # to be sent (again) at next_attempt_at
    SENT = "sent"
    FAILED = "failed"  # gave up after the last attempt: the notice is still in the portal


class OutgoingMail(Base):
    """One e-mail to send: a notice, or the link that confirms an address; sent by the sweep, retried."""

    __tablename__ = "outgoing_mail"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("graduate_accounts.id"), index=True)
    notice_id: Mapped[int | None] = mapped_column(ForeignKey("graduate_notices.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(16))  # notice | confirm
    to_address: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(String(300))


class MailAddress(Base):
    """A graduate's e-mail address for notices, in their language; used only once confirmed by its link."""

    __tablename__ = "graduate_mail_addresses"

    account_id: Mapped[int] = mapped_column(ForeignKey("graduate_accounts.id"), primary_key=True)
    address: Mapped[str] = mapped_column(String(254))
    language: Mapped[str] = mapped_column(String(2))
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
