"""The access check of the intake: the matrix plus the per-participant overrides.

The overrides are read from the process's registry snapshot (``gateway.registry.snapshot``: the
transaction's view, in no query), which reloads when any override is added or removed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from gateway.access.rules import Party, Rule, decide
from gateway.domain.message import DomainMessage
from gateway.errors import AccessDenied
from gateway.registry.snapshot import RegistrySnapshot


@dataclass(frozen=True)
class AccessPolicy:
    rules: Sequence[Rule]
    registry: RegistrySnapshot

    def check(self, message: DomainMessage, session: Session) -> None:
        """Raise :class:`AccessDenied` naming the rule when the message is not allowed."""
        sender = Party(message.sender.id, message.sender.kind, message.sender.region)
        recipient = Party(message.recipient.id, message.recipient.kind, message.recipient.region)
        overrides = self.registry.view(session).overrides_for(sender.id)
        decision = decide(self.rules, overrides, message.service, sender, recipient)
        if not decision.allowed:
            raise AccessDenied(decision.reason)
