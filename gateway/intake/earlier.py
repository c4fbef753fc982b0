"""The replay check's look-up: the stored message with a sender's message id, for a whole batch at once.

Every message's replay check (``gateway.security.verify.CheckRegistration``) asks whether its
sender stored that message id before. In the group commit's batch (``gateway.intake.writer``)
each used to ask with a SELECT of its own: on PostgreSQL one round trip each, and each round trip
costs the writer's thread its wait for the server and then its wait for the interpreter lock,
which the request threads hold meanwhile. :func:`look_ahead` asks for all the batch's messages
in one SELECT at the batch's start, in its transaction; :func:`stored_message` answers from it.
Measured (bench/intake/README.md, tenth pass): in process on PostgreSQL the writer's CPU went from
1.34 to 1.22 ms a message in batches of four; served on a 2-core machine with the database on
loopback, where the interpreter lock and the cores bound the intake, no change. The round trips
it saves count where the database is across a network.

Only ids that occur once in the batch are looked up ahead: a message id sent twice in one batch
must see the first one's row, written by the batch itself, so each of those is looked up when
its check runs, as before. A look-up ahead sees what was committed at the batch's start; another
process that stores the same id between then and this batch's INSERT makes that INSERT fail on
the unique key, which the intake refuses as a duplicate (``gateway.intake.pipeline.store``), as it
did when the same happened between the check and the INSERT.

On PostgreSQL the same statement reads the registry's version (``registry_version``), which the
batch's first check read with a SELECT of its own (``gateway.registry.snapshot``): one round trip
a batch fewer. :func:`look_ahead` returns it, and the intake brings its registry snapshot up to
date with it (``RegistrySnapshot.refresh(session, version=...)``).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, cast

from sqlalchemy import Integer, bindparam, column, select, text
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
# SQLite: the batch's senders and ids as two IN lists (a row of another pair of the two lists,
# two senders using one message id, is left out below).
_BY_LISTS = select(_messages.sender_id, _messages.message_id, *_COLUMNS).where(
    _messages.sender_id.in_(bindparam("senders", expanding=True)),
    _messages.message_id.in_(bindparam("ids", expanding=True)),
)
# PostgreSQL: the pairs as two arrays, each looked up in the unique key by a lateral subquery, in a
# statement whose text is the same for any batch. IN lists of the batch's length made a statement
# text for each length, parsed and planned until psycopg had prepared it on each pooled connection
# and PostgreSQL had stopped making custom plans for it: served with two workers that cost the
# database 0.26 ms of CPU a message, more than the round trips saved. ``(sender_id, message_id)
# IN (pairs)``, an OR of pairs, and a plain join of the arrays both took a sequential scan in the
# generic plan of a schema not yet analysed (tests/store/test_indexes.py); the LIMIT keeps the
# subquery from being flattened into such a join. SQLAlchemy's Core has no construct for the
# lateral subquery over unnested arrays, hence the text. Every pair gives a row (a LEFT JOIN: the
# found columns are NULL, ``found_id`` among them, for an id not stored), so that the registry's
# version, read by the same statement, comes back even when no message was stored before.
_BY_PAIRS = text(
    "SELECT given.sender_id, given.message_id, found.id AS found_id, found.signature_sha256, found.received_at,"
    " found.body_sha256, found.service, found.recipient_id, found.receipt,"
    " (SELECT version FROM registry_version WHERE id = 1) AS registry_version"
    " FROM unnest(CAST(:senders AS varchar[]), CAST(:ids AS varchar[])) AS given(sender_id, message_id)"
    " LEFT JOIN LATERAL (SELECT id, signature_sha256, received_at, body_sha256, service, recipient_id, receipt"
    " FROM messages WHERE messages.sender_id = given.sender_id AND messages.message_id = given.message_id"
    " LIMIT 1) AS found ON true"
).columns(
    _messages.sender_id,
    _messages.message_id,
    column("found_id", Integer),
    *_COLUMNS,
    column("registry_version", Integer),
)

LOOKED_UP = "gateway.earlier_messages"  # session.info: {(sender, message id): its row, or None}


def look_ahead(session: Session, keys: list[object]) -> int | None:
    """Look up the stored messages of ``keys`` (the intake's ``(sender, message id)`` pairs) in one
    SELECT, for :func:`stored_message` (the group commit's ``look_ahead``).

    Returns the registry's version when the statement read it too (PostgreSQL), else None.
    """
    counted = Counter(cast(list[tuple[str, str]], keys))
    once = [key for key, count in counted.items() if count == 1]
    if not once:
        return None
    connection = session.connection()
    version: int | None = None
    if connection.dialect.name == "postgresql":
        pairs = {"senders": [sender for sender, _ in once], "ids": [message_id for _, message_id in once]}
        rows = connection.execute(_BY_PAIRS, pairs).all()
        version = rows[0].registry_version
        rows = [row for row in rows if row.found_id is not None]
    else:
        senders, ids = sorted({sender for sender, _ in once}), sorted({message_id for _, message_id in once})
        rows = connection.execute(_BY_LISTS, {"senders": senders, "ids": ids}).all()
    found = {(row.sender_id, row.message_id): row for row in rows}
    session.info[LOOKED_UP] = {key: found.get(key) for key in once}
    return version


def stored_message(session: Session, sender: str, message_id: str) -> Any:
    """The stored message with this sender and id, if any (its signature and body digests, service,
    recipient, receipt and time): from the batch's look-up when it asked for it, else asked now."""
    looked_up = session.info.get(LOOKED_UP)
    key = (sender, message_id)
    if looked_up is not None and key in looked_up:
        return looked_up[key]
    return session.connection().execute(_ONE, {"sender": sender, "message_id": message_id}).first()
