"""A participant's story for the auditor: its registry entry as it stands, and every change to it.

The changes are the audit log's own entries about the participant, oldest first: its registration
(``registry.participant_added``), each field changed (``participant.updated``, with the old and the
new value, who changed it, from the command line or by the participant's own signed
``DirectoryEntryUpdate``), its certificates, and being disabled or enabled. Registry events are
rare beside messages, so they are read by kind (indexed) and matched on the entry's own facts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from gateway.audit.entries import Value, decode
from gateway.audit.models import AuditEntry
from gateway.registry.models import Participant
from gateway.registry.updates import UPDATED

REGISTRY_KINDS = (
    "registry.participant_added",
    UPDATED,
    "registry.certificate_registered",
    "registry.participant_disabled",
    "registry.participant_enabled",
)


@dataclass(frozen=True)
class RegistryChange:
    leaf_index: int
    at: datetime
    kind: str
    facts: dict[str, Value]

    @property
    def is_update(self) -> bool:
        return self.kind == UPDATED


@dataclass(frozen=True)
class ParticipantStory:
    participant: Participant
    archive_agency_name: str | None
    changes: list[RegistryChange]


def load_participant_story(session: Session, participant_id: str) -> ParticipantStory | None:
    """The participant ``participant_id`` and its registry changes, or None when there is none."""
    participant = session.scalar(
        select(Participant)
        .where(Participant.id == participant_id)
        .options(selectinload(Participant.regions_served), selectinload(Participant.certificates))
    )
    if participant is None:
        return None
    agency = session.get(Participant, participant.archive_agency_id) if participant.archive_agency_id else None
    changes = []
    rows = session.execute(
        select(AuditEntry.leaf_index, AuditEntry.at, AuditEntry.kind, AuditEntry.entry)
        .where(AuditEntry.kind.in_(REGISTRY_KINDS))
        .order_by(AuditEntry.leaf_index)
    )
    for leaf_index, at, kind, entry in rows:
        facts = decode(entry)
        if facts.get("participant") == participant.id:
            changes.append(RegistryChange(leaf_index, at, kind, facts))
    return ParticipantStory(participant, agency.name if agency is not None else None, changes)
