"""The index of messages about each graduate.

It holds no identity number: ``identity_hash`` is its keyed hash (``gateway.privacy``), the same one
the registrations, agreements and archive transfers carry, so that an auditor's search for a
graduate (an identity number typed in, hashed with the same key) finds the graduate's messages.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.base import Base


class MessageSubject(Base):
    """Which graduate an accepted business message is about.

    Written in the message's own transaction (``gateway.graduates.subjects.record_subject``); a
    message about no single graduate has no row. Messages accepted before migration 0010 have none.
    """

    __tablename__ = "message_subjects"

    message_pk: Mapped[int] = mapped_column(ForeignKey("messages.id"), primary_key=True)
    identity_hash: Mapped[str] = mapped_column(String(64), index=True)
