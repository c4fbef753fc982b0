"""Registering, listing and disabling participants, and registering their certificates.

Input is validated here, once, whoever calls (the CLI, ``gateway init``, tests): every refusal is a
:class:`ValidationError` naming the field and the rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from gateway.audit.entries import AuditEvent
from gateway.audit.log import record as record_event
from gateway.codes.credit_code import validate_credit_code
from gateway.codes.lists import code_list
from gateway.codes.regions import validate_region_code
from gateway.errors import NotFound, ValidationError
from gateway.registry.models import (
    DeliveryMode,
    Participant,
    ParticipantCertificate,
    ParticipantKind,
    ServedRegion,
)

# The domain part holds no further "@"; its last dot is found by backtracking, so the length is
# bounded first (an address has at most 254 characters): 4,000 dots took 0.8 s.
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_EMAIL_MAX = 254
_PHONE = re.compile(r"[0-9+\- ()]{5,40}")
# The free-text fields and their column sizes (schemas/directory-1.xsd uses the same limits).
_TEXT_LIMITS = {"contact_name": 100, "contact_email": 200, "contact_address": 300, "opening_hours": 200}


def keeps_archives(unit_nature: str | None) -> bool:
    """Whether employers of ``unit_nature`` receive archives themselves (if they hold archive rights)."""
    row = code_list("unit-nature-codes").get(unit_nature or "")
    return row is not None and row["archive_to_employer"] == "yes"


def _stripped(value: str | None) -> str | None:
    return value.strip() or None if value else None


@dataclass(frozen=True)
class ParticipantInput:
    """What it takes to register a participant, before validation."""

    id: str
    name: str
    kind: str
    region: str
    delivery_mode: str = DeliveryMode.PULL
    endpoint_url: str | None = None
    unit_nature: str | None = None
    regions_served: tuple[str, ...] = ()
    contact_name: str | None = None
    contact_phone: str | None = None
    contact_email: str | None = None
    contact_address: str | None = None
    opening_hours: str | None = None
    enabled: bool = True
    push_timeout_seconds: int = 10
    max_delivery_attempts: int = 8
    # Employers only. None: not said, which an employer whose unit nature keeps archives must say.
    archive_rights: bool | None = None
    archive_agency_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def validated(self) -> ParticipantInput:
        """This input with normalised values; raises :class:`ValidationError` on the first bad field."""
        pid = validate_credit_code(self.id, "id")
        name = self.name.strip()
        if not 1 <= len(name) <= 200:
            raise ValidationError("name", "must be 1 to 200 characters")
        kinds = [k.value for k in ParticipantKind]
        if self.kind not in kinds:
            raise ValidationError("kind", f"must be one of {', '.join(kinds)}")
        region = validate_region_code(self.region, "region")
        unit_nature = self.unit_nature or None
        if self.kind == ParticipantKind.EMPLOYER:
            if unit_nature is None:
                raise ValidationError("unit_nature", "an employer needs its unit nature code")
            if unit_nature not in code_list("unit-nature-codes"):
                raise ValidationError("unit_nature", f"{unit_nature!r} is not a unit nature code")
        elif unit_nature is not None:
            raise ValidationError("unit_nature", "only employers carry a unit nature code")
        archive_rights, archive_agency = self._archive_keeping(unit_nature)
        served = tuple(sorted({validate_region_code(r, "regions_served") for r in self.regions_served}))
        if self.kind == ParticipantKind.TALENT_SERVICE_AGENCY and not served:
            raise ValidationError("regions_served", "a talent service agency serves at least one region")
        mode = self.delivery_mode
        if mode not in (DeliveryMode.PUSH, DeliveryMode.PULL):
            raise ValidationError("delivery_mode", "must be push or pull")
        endpoint = self.endpoint_url or None
        if mode == DeliveryMode.PUSH:
            if endpoint is None:
                raise ValidationError("endpoint_url", "push delivery needs the recipient's endpoint URL")
            parts = urlsplit(endpoint)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValidationError("endpoint_url", "must be an absolute http or https URL")
        elif endpoint is not None:
            raise ValidationError("endpoint_url", "pull participants fetch from their mailbox; no endpoint")
        if not 1 <= self.push_timeout_seconds <= 300:
            raise ValidationError("push_timeout_seconds", "must be between 1 and 300 seconds")
        if not 1 <= self.max_delivery_attempts <= 100:
            raise ValidationError("max_delivery_attempts", "must be between 1 and 100")
        if self.contact_email and (len(self.contact_email) > _EMAIL_MAX or not _EMAIL.fullmatch(self.contact_email)):
            raise ValidationError("contact_email", "must be an e-mail address")
        if self.contact_phone and not _PHONE.fullmatch(self.contact_phone):
            raise ValidationError("contact_phone", "must be a telephone number (digits, spaces, + - ( ))")
        for text_field, limit in _TEXT_LIMITS.items():
            value = getattr(self, text_field)
            if value and (len(value.strip()) > limit or "\n" in value or "\r" in value):
                raise ValidationError(text_field, f"must be one line of at most {limit} characters")
        return ParticipantInput(
            id=pid,
            name=name,
            kind=self.kind,
            region=region,
            delivery_mode=mode,
            endpoint_url=endpoint,
            unit_nature=unit_nature,
            regions_served=served,
            contact_name=_stripped(self.contact_name),
            contact_phone=_stripped(self.contact_phone),
            contact_email=_stripped(self.contact_email),
            contact_address=_stripped(self.contact_address),
            opening_hours=_stripped(self.opening_hours),
            enabled=self.enabled,
            push_timeout_seconds=self.push_timeout_seconds,
            max_delivery_attempts=self.max_delivery_attempts,
            archive_rights=archive_rights,
            archive_agency_id=archive_agency,
        )

    def _archive_keeping(self, unit_nature: str | None) -> tuple[bool, str | None]:
        """Archive rights and archive agency, normalised: employers only; rights only for the unit
        natures that keep archives (state organs, public institutions, SOEs, armed forces), and an
        archive agency only for an employer without rights."""
        rights, agency = self.archive_rights, self.archive_agency_id or None
        if self.kind != ParticipantKind.EMPLOYER:
            if rights or agency is not None:
                raise ValidationError("archive_rights", "only employers hold or lack archive management rights")
            return False, None
        if not keeps_archives(unit_nature):
            if rights:
                raise ValidationError(
                    "archive_rights",
                    f"only state organs, public institutions, state-owned enterprises and the armed forces hold "
                    f"archive management rights, not an employer of unit nature {unit_nature}",
                )
            if agency is not None:
                raise ValidationError(
                    "archive_agency_id",
                    f"the archives of an employer of unit nature {unit_nature} go to the agency the graduate "
                    "chooses; it names no archive agency",
                )
            return False, None
        if rights is None:
            raise ValidationError(
                "archive_rights",
                f"an employer of unit nature {unit_nature} receives archives only if it holds archive management "
                "rights (有档案管理权限): say yes or no",
            )
        if agency is not None:
            agency = validate_credit_code(agency, "archive_agency_id")
            if rights:
                raise ValidationError(
                    "archive_agency_id", "an employer with archive management rights keeps the archives itself"
                )
            if agency == self.id.strip().upper():
                raise ValidationError("archive_agency_id", "must be a talent service agency, not the employer itself")
        return rights, agency


def add_participant(session: Session, data: ParticipantInput, now: datetime) -> Participant:
    """Register a participant. Raises :class:`ValidationError` on bad input or a taken id."""
    clean = data.validated()
    if session.get(Participant, clean.id) is not None:
        raise ValidationError("id", f"participant {clean.id} is already registered")
    check_archive_agency(session, clean)
    participant = Participant(
        id=clean.id,
        name=clean.name,
        kind=clean.kind,
        unit_nature=clean.unit_nature,
        region=clean.region,
        contact_name=clean.contact_name,
        contact_phone=clean.contact_phone,
        contact_email=clean.contact_email,
        contact_address=clean.contact_address,
        opening_hours=clean.opening_hours,
        archive_rights=bool(clean.archive_rights),
        archive_agency_id=clean.archive_agency_id,
        delivery_mode=clean.delivery_mode,
        endpoint_url=clean.endpoint_url,
        enabled=clean.enabled,
        push_timeout_seconds=clean.push_timeout_seconds,
        max_delivery_attempts=clean.max_delivery_attempts,
        created_at=now,
        updated_at=now,
        regions_served=[ServedRegion(region=r) for r in clean.regions_served],
    )
    session.add(participant)
    session.flush()
    _audit(
        session,
        "registry.participant_added",
        now,
        participant=participant.id,
        participant_kind=participant.kind,
        region=participant.region,
        delivery_mode=participant.delivery_mode,
    )
    return participant


def check_archive_agency(session: Session, clean: ParticipantInput) -> None:
    """The archive agency an employer names is a registered talent service agency."""
    if clean.archive_agency_id is None:
        return
    agency = session.get(Participant, clean.archive_agency_id)
    if agency is None or agency.kind != ParticipantKind.TALENT_SERVICE_AGENCY:
        raise ValidationError(
            "archive_agency_id", f"{clean.archive_agency_id} is not a registered talent service agency"
        )


def input_of(participant: Participant) -> ParticipantInput:
    """The registry row as the input that would register it again (for updates, validated whole)."""
    return ParticipantInput(
        id=participant.id,
        name=participant.name,
        kind=participant.kind,
        region=participant.region,
        delivery_mode=participant.delivery_mode,
        endpoint_url=participant.endpoint_url,
        unit_nature=participant.unit_nature,
        regions_served=tuple(r.region for r in participant.regions_served),
        contact_name=participant.contact_name,
        contact_phone=participant.contact_phone,
        contact_email=participant.contact_email,
        contact_address=participant.contact_address,
        opening_hours=participant.opening_hours,
        enabled=participant.enabled,
        push_timeout_seconds=participant.push_timeout_seconds,
        max_delivery_attempts=participant.max_delivery_attempts,
        archive_rights=participant.archive_rights,
        archive_agency_id=participant.archive_agency_id,
    )


def get_participant(session: Session, participant_id: str) -> Participant:
    """The participant with this id; raises :class:`NotFound`."""
    participant = session.get(
        Participant,
        participant_id.strip().upper(),
        options=[selectinload(Participant.regions_served), selectinload(Participant.certificates)],
    )
    if participant is None:
        raise NotFound(f"no participant {participant_id}")
    return participant


def list_participants(session: Session, kind: str | None = None) -> list[Participant]:
    query = (
        select(Participant)
        .options(selectinload(Participant.regions_served), selectinload(Participant.certificates))
        .order_by(Participant.kind, Participant.id)
    )
    if kind:
        query = query.where(Participant.kind == kind)
    return list(session.scalars(query))


def set_enabled(session: Session, participant_id: str, enabled: bool, now: datetime) -> Participant:
    participant = get_participant(session, participant_id)
    participant.enabled = enabled
    participant.updated_at = now
    _audit(
        session,
        "registry.participant_enabled" if enabled else "registry.participant_disabled",
        now,
        participant=participant.id,
    )
    return participant


def register_certificate(session: Session, participant_id: str, pem: bytes, now: datetime) -> ParticipantCertificate:
    """Register an X.509 certificate (PEM) to a participant; idempotent for the same certificate."""
    participant = get_participant(session, participant_id)
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise ValidationError("certificate", "is not a PEM-encoded X.509 certificate") from None
    fingerprint = cert.fingerprint(hashes.SHA256()).hex()
    existing = session.scalar(
        select(ParticipantCertificate).where(ParticipantCertificate.fingerprint_sha256 == fingerprint)
    )
    if existing is not None:
        if existing.participant_id != participant.id:
            raise ValidationError("certificate", f"is already registered to {existing.participant_id}")
        return existing
    record = ParticipantCertificate(
        participant_id=participant.id,
        fingerprint_sha256=fingerprint,
        subject=cert.subject.rfc4514_string(),
        serial_number=format(cert.serial_number, "x"),
        pem=cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        added_at=now,
    )
    participant.certificates.append(record)
    participant.updated_at = now
    session.flush()
    _audit(
        session,
        "registry.certificate_registered",
        now,
        participant=participant.id,
        certificate_sha256=fingerprint,
        not_after=record.not_after.isoformat(),
    )
    return record


def _audit(session: Session, event_kind: str, now: datetime, **facts: str | None) -> None:
    """Registry changes go into the audit log, in the transaction that makes them."""
    record_event(session, AuditEvent(kind=event_kind, at=now, facts=dict(facts)))


def participant_as_dict(participant: Participant) -> dict[str, Any]:
    """The registry view of a participant (CLI ``--json``)."""
    return {
        "id": participant.id,
        "name": participant.name,
        "kind": participant.kind,
        "unit_nature": participant.unit_nature,
        "region": participant.region,
        "regions_served": [r.region for r in participant.regions_served],
        "contact": {
            "name": participant.contact_name,
            "phone": participant.contact_phone,
            "email": participant.contact_email,
            "address": participant.contact_address,
            "opening_hours": participant.opening_hours,
        },
        "archive_rights": participant.archive_rights,
        "archive_agency_id": participant.archive_agency_id,
        "delivery_mode": participant.delivery_mode,
        "endpoint_url": participant.endpoint_url,
        "push_timeout_seconds": participant.push_timeout_seconds,
        "max_delivery_attempts": participant.max_delivery_attempts,
        "enabled": participant.enabled,
        "certificates": [
            {
                "fingerprint_sha256": c.fingerprint_sha256,
                "subject": c.subject,
                "serial_number": c.serial_number,
                "not_before": c.not_before.isoformat(),
                "not_after": c.not_after.isoformat(),
            }
            for c in participant.certificates
        ],
        "created_at": participant.created_at.isoformat(),
        "updated_at": participant.updated_at.isoformat(),
    }
