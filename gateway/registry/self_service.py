"""``DirectoryEntryUpdate``: a participant keeps its own public contact information current.

The service rules (:class:`~gateway.domain.message.ServiceRules`) of the one message a participant
sends about itself. Whose entry changes is the signed sender's, nobody else's: the access rule
``R-DIR-1`` (condition ``own_entry``) admits the message only addressed to the sender's own
participant id, and the document names no participant. What changes is only what the schema
(``schemas/directory-1.xsd``) carries, the contact fields of
:data:`gateway.registry.updates.CONTACT_FIELDS`; everything else in the entry stays with the
operator. ``check`` validates the new entry with the registry's own rules (reads the sender's
row: the message carries the registry snapshot's entry, which is not the row); ``apply`` writes
the changed fields and one ``participant.updated`` audit entry each, naming the message (the
write moves the registry's version: the snapshots reload).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from gateway.domain.message import DomainMessage
from gateway.errors import AccessDenied, SchemaViolation, ValidationError
from gateway.registry.models import Participant
from gateway.registry.services import get_participant
from gateway.registry.updates import CONTACT_FIELDS, ChangedBy, proposed_changes, update_participant

DIRECTORY_NS = "urn:gradex:directory:1"
SERVICE = "DirectoryEntryUpdate"
# Document element -> registry field.
ELEMENTS = {
    "ContactName": "contact_name",
    "ContactPhone": "contact_phone",
    "ContactEmail": "contact_email",
    "ContactAddress": "contact_address",
    "OpeningHours": "opening_hours",
}


def requested_changes(message: DomainMessage) -> dict[str, Any]:
    """Field -> new value (None clears it) for each element the document carries."""
    changes: dict[str, Any] = {}
    for element_name, field_name in ELEMENTS.items():
        element = message.document.find(f"{{{DIRECTORY_NS}}}{element_name}")
        if element is not None:
            changes[field_name] = (element.text or "").strip() or None
    return changes


class DirectoryEntryUpdateRules:
    def check(self, message: DomainMessage, session: Session) -> None:
        """The sender's entry with the new values passes the registry's rules.

        The schema already holds each value to the same rule, so a refusal here means the two
        drifted apart: it is reported as a schema violation naming the field.
        """
        if message.recipient.id != message.sender.id:  # also when an access override would let it through
            raise AccessDenied(
                f"{SERVICE} changes the sender's own entry only: address it to {message.sender.id}, "
                f"not {message.recipient.id}"
            )
        try:
            proposed_changes(session, _row(message, session), requested_changes(message), CONTACT_FIELDS)
        except ValidationError as exc:
            raise SchemaViolation(f"DirectoryEntryUpdate: {exc.field}: {exc.rule}") from None

    def apply(self, message: DomainMessage, session: Session) -> None:
        """Publish the new values at once, each change an audit entry naming this message."""
        update_participant(
            session,
            _row(message, session),
            requested_changes(message),
            ChangedBy(who=message.sender.id, via=SERVICE, message_id=message.message_id),
            message.received_at,
            allowed=CONTACT_FIELDS,
        )


def _row(message: DomainMessage, session: Session) -> Participant:
    """The sender's registry row, in the message's transaction."""
    return get_participant(session, message.sender.id)
