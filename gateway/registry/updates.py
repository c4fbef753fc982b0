"""Changing a registered participant's entry, from the command line or by its own signed message.

Operators change anything an agency or an employer may need changed (``OPERATOR_FIELDS``); a
participant itself changes only its public contact information (``CONTACT_FIELDS``, through the
``DirectoryEntryUpdate`` service, ``gateway.registry.self_service``). Either way the entry is
validated whole by the registry's own rules (:meth:`ParticipantInput.validated`), and every field
that changes is an audit entry ``participant.updated`` in the same transaction, naming the
participant, the field, the old and the new value, and who changed it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from gateway.audit.entries import AuditEvent, Value
from gateway.audit.log import record
from gateway.errors import ValidationError
from gateway.registry.models import Participant, ParticipantKind, ServedRegion
from gateway.registry.services import ParticipantInput, check_archive_agency, input_of, keeps_archives

UPDATED = "participant.updated"
# What a participant publishes about itself and may keep current on its own.
CONTACT_FIELDS = ("contact_name", "contact_phone", "contact_email", "contact_address", "opening_hours")
# What an operator may change (the id, kind and seat make another participant: register that instead).
OPERATOR_FIELDS = (
    "name",
    *CONTACT_FIELDS,
    "regions_served",
    "endpoint_url",
    "delivery_mode",
    "push_timeout_seconds",
    "max_delivery_attempts",
    "unit_nature",
    "archive_rights",
    "archive_agency_id",
)


@dataclass(frozen=True)
class Change:
    field: str
    old: Value
    new: Value

    def as_dict(self) -> dict[str, Value]:
        return {"field": self.field, "old": self.old, "new": self.new}


@dataclass(frozen=True)
class ChangedBy:
    """Who made a change: ``who`` (an operator's account, or the participant itself) and ``via`` what."""

    who: str
    via: str  # "command line" or "DirectoryEntryUpdate"
    message_id: str | None = None


def proposed_changes(
    session: Session, participant: Participant, changes: Mapping[str, Any], allowed: Collection[str] = OPERATOR_FIELDS
) -> tuple[ParticipantInput, list[Change]]:
    """The entry ``changes`` would make, validated whole, and the fields it really changes.

    Raises :class:`ValidationError` naming the field for a field not in ``allowed`` or a value the
    registry refuses. Changes nothing.
    """
    if participant.kind not in {k.value for k in ParticipantKind}:
        raise ValidationError("id", f"{participant.id} is the gateway's own {participant.kind} participant")
    for name in changes:
        if name not in allowed:
            raise ValidationError(name, f"cannot be changed here (changeable: {', '.join(allowed)})")
    before = input_of(participant)
    values = {name: _input_value(name, value) for name, value in changes.items()}
    if "unit_nature" in values and "archive_rights" not in values:
        if not keeps_archives(values["unit_nature"]):  # archives go to an agency the graduate chooses
            values["archive_rights"] = False
            values.setdefault("archive_agency_id", None)
        elif not keeps_archives(before.unit_nature):  # it now keeps archives: the operator says whether it may
            values["archive_rights"] = None
    proposed = replace(before, **values).validated()
    check_archive_agency(session, proposed)
    found = [
        Change(name, _audit_value(getattr(before, name)), _audit_value(getattr(proposed, name)))
        for name in OPERATOR_FIELDS
        if name in values and getattr(before, name) != getattr(proposed, name)
    ]
    return proposed, found


def update_participant(
    session: Session,
    participant: Participant,
    changes: Mapping[str, Any],
    changed_by: ChangedBy,
    now: datetime,
    allowed: Collection[str] = OPERATOR_FIELDS,
) -> list[Change]:
    """Apply ``changes`` (field -> new value; None or "" clears an optional field) to ``participant``.

    Returns the fields that really changed, each recorded as a ``participant.updated`` audit entry.
    Raises :class:`ValidationError` as :func:`proposed_changes` does; nothing is changed then.
    """
    proposed, found = proposed_changes(session, participant, changes, allowed)
    for change in found:
        _set(participant, change.field, getattr(proposed, change.field))
        record(
            session,
            AuditEvent(
                kind=UPDATED,
                at=now,
                message_id=changed_by.message_id,
                facts={
                    "participant": participant.id,
                    "field": change.field,
                    "old": change.old,
                    "new": change.new,
                    "by": changed_by.who,
                    "via": changed_by.via,
                    "message_id": changed_by.message_id,
                },
            ),
        )
    if found:
        participant.updated_at = now
    return found


def _input_value(name: str, value: Any) -> Any:
    if name == "regions_served":
        return tuple(value or ())
    if isinstance(value, str) and not value.strip() and name not in ("name",):
        return None
    return value


def _audit_value(value: Any) -> Value:
    if isinstance(value, tuple):
        return ";".join(value)
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)


def _set(participant: Participant, name: str, value: Any) -> None:
    if name == "regions_served":
        kept = {r.region: r for r in participant.regions_served}
        participant.regions_served = [kept.get(code) or ServedRegion(region=code) for code in value]
    elif name == "archive_rights":
        participant.archive_rights = bool(value)
    else:
        setattr(participant, name, value)
