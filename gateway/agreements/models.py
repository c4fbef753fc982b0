"""An employment agreement's current state (the state machine is ``gateway.agreements.machine``)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.base import Base, UtcDateTime


class Agreement(Base):
    __tablename__ = "agreements"
    __table_args__ = (UniqueConstraint("employer_id", "agreement_id", name="uq_agreements_employer_agreement"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agreement_id: Mapped[str] = mapped_column(String(64), index=True)
    # No index of its own: the unique key (employer_id, agreement_id) leads with it (migration 0014).
    employer_id: Mapped[str] = mapped_column(ForeignKey("participants.id"))
    university_id: Mapped[str] = mapped_column(ForeignKey("participants.id"), index=True)
    identity_hash: Mapped[str] = mapped_column(String(64), index=True)
    graduate_name: Mapped[str] = mapped_column(String(100))
    position: Mapped[str] = mapped_column(String(100))
    work_region: Mapped[str] = mapped_column(String(6))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date] = mapped_column(Date)
    state: Mapped[str] = mapped_column(String(32), index=True)
    cancellation_requested_by: Mapped[str | None] = mapped_column(String(16))
    offered_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
