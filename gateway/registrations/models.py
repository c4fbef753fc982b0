"""A graduate's destination registration as the gateway saw it, and whether it was filed.

The identity number is never stored: ``identity_hash`` is its keyed hash (``gateway.privacy``).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.base import Base, UtcDateTime


class RegistrationStatus:
    REGISTERED = "registered"
    FILED = "filed"
    REJECTED = "rejected"


class Registration(Base):
    __tablename__ = "registrations"
    __table_args__ = (UniqueConstraint("university_id", "registration_id", name="uq_registrations_university_reg"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    registration_id: Mapped[str] = mapped_column(String(64))
    # No index of its own: the unique key (university_id, registration_id) leads with it (migration 0014).
    university_id: Mapped[str] = mapped_column(ForeignKey("participants.id"))
    education_department_id: Mapped[str] = mapped_column(ForeignKey("participants.id"))
    identity_hash: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(100))
    education_level: Mapped[str] = mapped_column(String(16))
    major: Mapped[str] = mapped_column(String(100))
    major_code: Mapped[str] = mapped_column(String(8))
    graduation_date: Mapped[date] = mapped_column(Date)
    leaves_late: Mapped[bool] = mapped_column(Boolean, default=False)
    destination_code: Mapped[str] = mapped_column(String(3))
    employer_id: Mapped[str | None] = mapped_column(String(18))
    employer_name: Mapped[str | None] = mapped_column(String(200))
    employer_unit_nature: Mapped[str | None] = mapped_column(String(2))
    employer_region: Mapped[str | None] = mapped_column(String(6))
    contract_reference: Mapped[str | None] = mapped_column(String(64))
    contract_date: Mapped[date | None] = mapped_column(Date)
    targeted_unit_id: Mapped[str | None] = mapped_column(String(18))
    targeted_release_reference: Mapped[str | None] = mapped_column(String(64))
    admitting_institution_id: Mapped[str | None] = mapped_column(String(18))
    household_region: Mapped[str] = mapped_column(String(6))
    archive_receiver_choice: Mapped[str] = mapped_column(String(32))
    archive_receiver_id: Mapped[str | None] = mapped_column(String(18))
    status: Mapped[str] = mapped_column(String(12), index=True)
    transfer_number: Mapped[str | None] = mapped_column(String(32), index=True)
    verification_number: Mapped[str | None] = mapped_column(String(32), index=True)
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime)
    filed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # as the filing declares it
    # When the gateway received the filing: which filed registration counts is decided by this, the
    # order the gateway filed them, never by a date written inside a document.
    filed_received_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
