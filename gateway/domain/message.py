"""What a service's rules see of an accepted-so-far message, and the interface they implement."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from lxml import etree
from sqlalchemy.orm import Session

from gateway.privacy import IdentityHasher
from gateway.registry.snapshot import ParticipantEntry
from gateway.settings import Settings


@dataclass(frozen=True)
class DomainMessage:
    """A verified message on its way to the store: its document and who sends it to whom."""

    service: str
    document: etree._Element  # the signed Body's document
    sender: ParticipantEntry  # as the registry snapshot of the message's transaction has them
    recipient: ParticipantEntry
    received_at: datetime
    message_pk: int | None  # set once the message is stored (for ``apply``)
    hasher: IdentityHasher
    settings: Settings
    message_id: str | None = None  # the routing header's MessageId
    client: str | None = None  # the sending machine's address (short-code throttles)


class ServiceRules(Protocol):
    """The domain rules of one service.

    ``check`` runs before the message is stored and refuses it with a :class:`~gateway.errors.Fault`;
    ``apply`` runs after it is stored, in the same transaction, and records what it changes
    (a filed registration, an agreement's state, an archive's clock).
    """

    def check(self, message: DomainMessage, session: Session) -> None: ...

    def apply(self, message: DomainMessage, session: Session) -> None: ...
