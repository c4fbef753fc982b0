"""Participants, the regions agencies serve, the certificates registered to them, and the registry's version."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gateway.store.base import Base, UtcDateTime


class ParticipantKind(StrEnum):
    UNIVERSITY = "university"
    EDUCATION_DEPARTMENT = "education_department"
    TALENT_SERVICE_AGENCY = "talent_service_agency"
    EMPLOYER = "employer"
    HOUSEHOLD_REGISTRATION_OFFICE = "household_registration_office"


class DeliveryMode(StrEnum):
    PUSH = "push"
    PULL = "pull"


class Participant(Base):
    """An organisation registered with the gateway, identified by its unified social credit code."""

    __tablename__ = "participants"

    id: Mapped[str] = mapped_column(String(18), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40), index=True)
    unit_nature: Mapped[str | None] = mapped_column(String(2))
    region: Mapped[str] = mapped_column(String(6), index=True)
    contact_name: Mapped[str | None] = mapped_column(String(100))
    contact_phone: Mapped[str | None] = mapped_column(String(40))
    contact_email: Mapped[str | None] = mapped_column(String(200))
    contact_address: Mapped[str | None] = mapped_column(String(300))
    opening_hours: Mapped[str | None] = mapped_column(String(200))
    delivery_mode: Mapped[str] = mapped_column(String(8))
    endpoint_url: Mapped[str | None] = mapped_column(String(500))
    push_timeout_seconds: Mapped[int] = mapped_column(Integer, default=10)
    max_delivery_attempts: Mapped[int] = mapped_column(Integer, default=8)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Employers only: whether it holds archive management rights (有档案管理权限), and if not, the
    # talent service agency that keeps its personnel files (gateway.archives.rules, rule 4).
    archive_rights: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    archive_agency_id: Mapped[str | None] = mapped_column(ForeignKey("participants.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    regions_served: Mapped[list[ServedRegion]] = relationship(
        back_populates="participant", cascade="all, delete-orphan", order_by="ServedRegion.region"
    )
    certificates: Mapped[list[ParticipantCertificate]] = relationship(
        back_populates="participant", cascade="all, delete-orphan", order_by="ParticipantCertificate.id"
    )


class ServedRegion(Base):
    """A region a talent service agency (or another participant) is responsible for."""

    __tablename__ = "served_regions"

    participant_id: Mapped[str] = mapped_column(ForeignKey("participants.id"), primary_key=True)
    region: Mapped[str] = mapped_column(String(6), primary_key=True, index=True)

    participant: Mapped[Participant] = relationship(back_populates="regions_served")


class ParticipantCertificate(Base):
    """An X.509 certificate registered to a participant (PEM), with its validity for display."""

    __tablename__ = "participant_certificates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    participant_id: Mapped[str] = mapped_column(ForeignKey("participants.id"), index=True)
    fingerprint_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    subject: Mapped[str] = mapped_column(String(500))
    serial_number: Mapped[str] = mapped_column(String(64))
    pem: Mapped[str] = mapped_column(Text)
    not_before: Mapped[datetime] = mapped_column(UtcDateTime)
    not_after: Mapped[datetime] = mapped_column(UtcDateTime)
    added_at: Mapped[datetime] = mapped_column(UtcDateTime)

    participant: Mapped[Participant] = relationship(back_populates="certificates")


class RegistryVersion(Base):
    """One row: a counter that every write to the registry's tables moves, in its own transaction.

    Database triggers move it (migration 0013), so no writer can forget to; the registry tables
    are :data:`gateway.registry.snapshot.REGISTRY_TABLES` (of participants, the columns the
    snapshot holds: a change of contact details moves nothing). Each process's
    :class:`~gateway.registry.snapshot.RegistrySnapshot` reloads when it has moved.
    """

    __tablename__ = "registry_version"
    __table_args__ = (CheckConstraint("id = 1", name="ck_registry_version_one_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger)
