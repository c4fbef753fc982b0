"""The replay check's look-up: the stored message with a sender's message id, for a whole batch at once.

Every message's replay check (``gateway.security.verify.CheckRegistration``) asks whether its
sender stored that message id before. In the group commit's batch (``gateway.intake.writer``)
each used to ask with a SELECT of its own: on PostgreSQL one round trip each, and each round trip
costs the writer's thread its wait for the server and then its wait for the interpreter lock,
which the request threads hold meanwhile. :func:`look_ahead` asks for all the batch's messages
in one SELECT at the batch's start, in its transaction; :func:`stored_message` answers from it.

Only ids that occur once in the batch are looked up ahead: a message id sent twice in one batch
must see the first one's row, written by the batch itself, so each of those is looked up when
its check runs, as before. A look-up ahead sees what was committed at the batch's start; another
process that stores the same id between then and this batch's INSERT makes that INSERT fail on
the unique key, which the intake refuses as a duplicate (``gateway.intake.pipeline.store``), as it
did when the same happened between the check and the INSERT.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from gateway.messages.models import Message

_messages = Message.__table__.c
_COLUMNS = (
    _messages.signature_sha256,
    _messages.received_at,
    _messages.body_sha256,
    _messages.service,
    _messages.recipient_id,
    _messages.receipt,
)
# Built once and run on the session's connection (Core: no ORM entities to load, nothing to compile twice).
_ONE = select(*_COLUMNS).where(
    _messages.sender_id == bindparam("sender"), _messages.message_id == bindparam("message_id")
)
# The batch's senders and ids as two lists, not as pairs: PostgreSQL plans ``(sender_id,
# message_id) IN ((..), (..))`` as an OR of pairs, and the generic plan its prepared statements keep
# scanned the whole table on a schema not yet analysed (tests/store/test_indexes.py); two IN lists
# are both in the unique key's index condition. A row of another pair of the two lists (two
# senders using one message id) is left out below.
_MANY = select(_messages.sender_id, _messages.message_id, *_COLUMNS).where(
    _messages.sender_id.in_(bindparam("senders", expanding=True)),
    _messages.message_id.in_(bindparam("ids", expanding=True)),
)

LOOKED_UP = "gateway.earlier_messages"  # session.info: (the keys looked up, {key: row})

Key = tuple[str, str]  # (sender, message id) as the message claims them


def look_ahead(session: Session, keys: Iterable[object]) -> None:
    """Look up the stored messages of ``keys`` (``(sender, message id)`` pairs) in one SELECT, for
    :func:`stored_message` (the group commit's ``look_ahead``; keys of another shape are left alone)."""
    counted = Counter(key for key in keys if isinstance(key, tuple))
    once = [key for key, count in counted.items() if count == 1]
    if not once:
        return
    asked = frozenset(once)
    senders, ids = sorted({sender for sender, _ in once}), sorted({message_id for _, message_id in once})
    rows = session.connection().execute(_MANY, {"senders": senders, "ids": ids}).all()
    found = {(row.sender_id, row.message_id): row for row in rows}
    session.info[LOOKED_UP] = (asked, {key: row for key, row in found.items() if key in asked})


def stored_message(session: Session, sender: str, message_id: str) -> Any:
    """The stored message with this sender and id, if any (its signature and body digests, service,
    recipient, receipt and time): from the batch's look-up when it asked for it, else asked now."""
    looked_up = session.info.get(LOOKED_UP)
    key = (sender, message_id)
    if looked_up is not None and key in looked_up[0]:
        return looked_up[1].get(key)
    return find_earlier(session.connection(), sender, message_id)


def find_earlier(connection: Connection, sender: str, message_id: str) -> Any:
    """The stored message with this sender and id, if any, asked now."""
    return connection.execute(_ONE, {"sender": sender, "message_id": message_id}).first()
