"""Verification runs started from the auditor UI, with their outcome.

A run is also an audit entry (``audit.verified``, written when it ends) so that who checked the
log, when, and what they found is itself in the tamper-evident log; this table keeps what the page
shows (progress while running, the problems found) and is not evidence of anything: the evidence
is the log, which anyone can verify again.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.base import Base, UtcDateTime


class Outcome(StrEnum):
    RUNNING = "running"
    OK = "ok"
    PROBLEMS = "problems"
    ERROR = "error"  # the run itself failed (database gone, key unreadable): nothing was concluded


class AuditVerification(Base):
    __tablename__ = "audit_verifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    started_by: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    heartbeat_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    outcome: Mapped[str] = mapped_column(String(12))
    entries: Mapped[int] = mapped_column(Integer, default=0)  # checked so far, then in all
    checkpoints: Mapped[int] = mapped_column(Integer, default=0)
    problems: Mapped[int] = mapped_column(Integer, default=0)
    details: Mapped[str | None] = mapped_column(Text)  # JSON: the first problems, [{"position", "what"}]
    error: Mapped[str | None] = mapped_column(String(500))
