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

    Both run in the intake's group commit (``gateway.intake.writer``): one writer thread, many
    messages in one transaction, each message in a savepoint of its own. So a rule never commits,
    never opens a session or transaction of its own, and keeps nothing between calls that belongs to
    one transaction; what an earlier message of the batch wrote, it sees. Its statements are best
    built once (module level, or cached per dialect), reading only the columns it needs; a rule
    that writes a row with a Core statement expires the ORM object the session may hold for it
    (``gateway.store.db.expire_held``). A race the check cannot see is decided by the write
    itself: an ``UPDATE`` conditional on the state checked, or an insert under a unique key.
    """

    def check(self, message: DomainMessage, session: Session) -> None: ...

    def apply(self, message: DomainMessage, session: Session) -> None: ...
