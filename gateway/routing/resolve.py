"""Resolving a recipient: a participant id, or a role plus a region walked county -> city -> province.

The walk is pure; the registry is behind the two-method :class:`Directory` interface.
"""

from __future__ import annotations

from typing import Protocol

from gateway.codes.regions import ancestry
from gateway.errors import RecipientDisabled, UnknownRecipient
from gateway.intake.envelope import Recipient
from gateway.registry.models import Participant


class Directory(Protocol):
    def participant(self, participant_id: str) -> Participant | None:
        """The participant with this id, enabled or not."""
        ...

    def responsible_for(self, role: str, region: str) -> list[Participant]:
        """Participants of kind ``role`` that serve exactly ``region`` (or sit in it), enabled or not."""
        ...


def resolve_recipient(recipient: Recipient, directory: Directory) -> Participant:
    """The enabled participant ``recipient`` names.

    Raises :class:`UnknownRecipient` when it resolves to nobody, :class:`RecipientDisabled` when
    the only participants it resolves to are disabled.
    """
    if recipient.participant is not None:
        found = directory.participant(recipient.participant)
        if found is None:
            raise UnknownRecipient(f"recipient {recipient.participant} is not a registered participant")
        if not found.enabled:
            raise RecipientDisabled(f"recipient {found.id} ({found.name}) is disabled")
        return found
    if recipient.role is None or recipient.region is None:
        raise UnknownRecipient("the recipient names neither a participant nor a role and a region")
    # The nearest level with anyone responsible decides: a disabled agency there is not silently
    # replaced by the one above it, it is refused.
    for code in ancestry(recipient.region):
        candidates = sorted(directory.responsible_for(recipient.role, code), key=lambda p: p.id)
        if not candidates:
            continue
        enabled = [p for p in candidates if p.enabled]
        if enabled:
            return enabled[0]
        names = ", ".join(p.id for p in candidates)
        raise RecipientDisabled(f"{recipient.describe()} is {names}, which is disabled")
    raise UnknownRecipient(f"no participant is registered as {recipient.describe()} or above it")
