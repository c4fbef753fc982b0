"""The web's two tables: the sessions signed in now, and the readiness probe's scratch row.

A :class:`WebSession` row is what makes a session cookie worth anything: the cookie (signed by
Flask) carries a random session id, and the row, keyed by the SHA-256 of that id, must still exist.
Signing out deletes the row, so a cookie captured before sign-out opens nothing afterwards.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.base import Base, UtcDateTime


class WebSession(Base):
    __tablename__ = "web_sessions"

    # SHA-256 (hex) of the id in the cookie: a database reader cannot forge a cookie from it.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    realm: Mapped[str] = mapped_column(String(16))  # graduate or staff
    account_id: Mapped[int] = mapped_column(Integer, index=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class ReadinessProbe(Base):
    """Rows written and deleted by ``/readyz`` in one transaction, to prove the database takes writes."""

    __tablename__ = "readiness_probes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
