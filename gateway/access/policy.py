"""The access check of the intake: the matrix plus the overrides stored in the database."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.orm import Session

from gateway.access.models import AccessOverride
from gateway.access.rules import Override, Party, Rule, decide
from gateway.domain.message import DomainMessage
from gateway.errors import AccessDenied


@dataclass(frozen=True)
class AccessPolicy:
    rules: Sequence[Rule]

    def check(self, message: DomainMessage, session: Session) -> None:
        """Raise :class:`AccessDenied` naming the rule when the message is not allowed."""
        sender = Party(message.sender.id, message.sender.kind, message.sender.region)
        recipient = Party(message.recipient.id, message.recipient.kind, message.recipient.region)
        decision = decide(self.rules, overrides_for(session, sender.id), message.service, sender, recipient)
        if not decision.allowed:
            raise AccessDenied(decision.reason)


# Columns, not entities: nothing to put in the identity map on every message's path. A Core
# statement built once: building it for each message cost more than running it (issue 13).
_O = cast(Table, AccessOverride.__table__)
_OVERRIDES = select(_O.c.id, _O.c.participant_id, _O.c.service, _O.c.counterpart_id, _O.c.effect, _O.c.reason).where(
    _O.c.participant_id == bindparam("participant_id")
)


def overrides_for(session: Session, participant_id: str) -> list[Override]:
    rows = session.execute(_OVERRIDES, {"participant_id": participant_id})
    return [Override(*row) for row in rows]
