"""Managing access overrides (the per-participant grants and denials)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.access.models import OVERRIDE_COLUMNS, AccessOverride
from gateway.access.rules import Override, Rule
from gateway.audit.entries import AuditEvent
from gateway.audit.log import record
from gateway.errors import NotFound, ValidationError
from gateway.registry.services import get_participant

EFFECTS = ("grant", "deny")


def add_override(
    session: Session,
    rules: tuple[Rule, ...],
    services: set[str],
    participant_id: str,
    service: str,
    effect: str,
    reason: str,
    now: datetime,
    counterpart_id: str | None = None,
) -> AccessOverride:
    """Record a grant or denial for ``participant_id`` sending ``service`` (``*`` for all services).

    Raises :class:`ValidationError` naming the field, :class:`NotFound` for unknown participants.
    """
    if effect not in EFFECTS:
        raise ValidationError("effect", "must be grant or deny")
    if service != "*" and service not in services:
        raise ValidationError("service", f"{service!r} is not a service of the WSDL (or * for all)")
    if not reason.strip():
        raise ValidationError("reason", "say why: the reason is shown in every refusal it causes")
    participant = get_participant(session, participant_id)
    counterpart = get_participant(session, counterpart_id).id if counterpart_id else None
    override = AccessOverride(
        participant_id=participant.id,
        service=service,
        counterpart_id=counterpart,
        effect=effect,
        reason=reason.strip(),
        created_at=now,
    )
    session.add(override)
    session.flush()
    record(
        session,
        AuditEvent(
            kind="access.override_added",
            at=now,
            facts={
                "override": override.id,
                "participant": override.participant_id,
                "service": service,
                "counterpart": counterpart,
                "effect": effect,
            },
        ),
    )
    return override


def list_overrides(session: Session, participant_id: str | None = None) -> list[AccessOverride]:
    query = select(AccessOverride).order_by(AccessOverride.id)
    if participant_id:
        query = query.where(AccessOverride.participant_id == participant_id.strip().upper())
    return list(session.scalars(query))


def overrides_for(session: Session, participant_id: str) -> list[Override]:
    """``participant_id``'s overrides as the access rules read them, by number (the intake reads
    them from the registry snapshot instead: ``gateway.access.policy``)."""
    rows = session.execute(
        select(*OVERRIDE_COLUMNS).where(AccessOverride.participant_id == participant_id).order_by(AccessOverride.id)
    )
    return [Override(*row) for row in rows]


def remove_override(session: Session, override_id: int, now: datetime) -> AccessOverride:
    override = session.get(AccessOverride, override_id)
    if override is None:
        raise NotFound(f"no access override #{override_id}")
    session.delete(override)
    record(
        session,
        AuditEvent(
            kind="access.override_removed",
            at=now,
            facts={"override": override_id, "participant": override.participant_id},
        ),
    )
    return override
