"""Resolving a recipient: a participant id, or a role plus a region walked county -> city -> province.

The walk is pure; the registry is behind the two-method :class:`Directory` interface: the intake's
is the process's registry snapshot (``gateway.registry.snapshot.RegistryView``), read in no query.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from gateway.codes.regions import ancestry, validate_region_code
from gateway.errors import CodeInvalid, RecipientDisabled, UnknownRecipient, ValidationError
from gateway.intake.envelope import Recipient
from gateway.registry.snapshot import ParticipantEntry

T = TypeVar("T")


def nearest_level(region: str, responsible: Callable[[str], Sequence[T]]) -> tuple[str, Sequence[T]] | None:
    """The nearest level of ``region``'s walk (county -> city -> province) at which anyone is
    responsible, and who is, enabled or not; None when nobody is at any level.

    The one rule for a disabled participant, in routing and in the archive rules alike: the nearest
    level with anyone responsible decides, and a disabled one there is refused, never silently
    replaced by the level above (the message or the archive must not land somewhere other than
    where the rule points).
    """
    for code in ancestry(region):
        found = responsible(code)
        if found:
            return code, found
    return None


class Directory(Protocol):
    def participant(self, participant_id: str) -> ParticipantEntry | None:
        """The participant with this id, enabled or not."""
        ...

    def responsible_for(self, role: str, region: str) -> Sequence[ParticipantEntry]:
        """Participants of kind ``role`` that serve exactly ``region`` (or sit in it), enabled or not."""
        ...


def resolve_recipient(recipient: Recipient, directory: Directory) -> ParticipantEntry:
    """The enabled participant ``recipient`` names.

    Raises :class:`CodeInvalid` for a region that is not a current GB/T 2260 code,
    :class:`UnknownRecipient` when it resolves to nobody, :class:`RecipientDisabled` when the
    participants responsible at the nearest level with any are all disabled (:func:`nearest_level`).
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
    try:  # the routing header's region is checked against GB/T 2260 like those in documents
        validate_region_code(recipient.region, "region code")
    except ValidationError as exc:
        raise CodeInvalid(f"routing header Recipient/Region {exc.rule}") from None
    role = recipient.role
    nearest = nearest_level(recipient.region, lambda code: directory.responsible_for(role, code))
    if nearest is None:
        raise UnknownRecipient(f"no participant is registered as {recipient.describe()} or above it")
    level, candidates = nearest
    enabled = sorted((p for p in candidates if p.enabled), key=lambda p: p.id)
    if enabled:
        return enabled[0]
    names = ", ".join(sorted(p.id for p in candidates))
    raise RecipientDisabled(
        f"{recipient.describe()} is {names} (responsible for {level}), which is disabled; "
        "it is not replaced by the level above"
    )
