"""The sequencer: the only writer of the tree. It folds new entries into stored nodes and signs a checkpoint.

One at a time across processes: on PostgreSQL it holds a transaction-scoped advisory lock (a second
sequencer finds it taken and does nothing); on SQLite the process-wide transaction lock of
``gateway.store.db`` already serialises it. Entries carry their leaf index from ``record``; the
sequencer reads them in index order from the last integrated one, stores the complete subtrees
each new leaf closes (``merkle.append``), and signs a checkpoint for the new size.

Two refusals keep what it signs honest (``docs/audit.md``, *What an insider with database access
can do*):

- an entry whose stored bytes do not hash to the leaf hash ``record`` stored with it (or that is
  not bytes at all) was changed, or written, behind the gateway's back: the sequencer integrates
  the entries before it and stops there, saying so loudly at every new occurrence; ``/readyz`` and
  ``gateway audit verify`` name the position until the row is put right. An entry still missing
  when later ones are older than :data:`GAP_PATIENCE` was deleted: the same;
- with a :class:`~gateway.audit.publish.CheckpointDirectory`, a new checkpoint must extend the
  newest one published outside the database, or nothing is signed (the log was shortened or
  rewritten). Each checkpoint is published once its transaction has committed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import insert, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from gateway.audit import checkpoint as notes
from gateway.audit.log import forget_sequenced, sequence_pending
from gateway.audit.merkle import NodeReader, append, leaf_hash, node_hash, root
from gateway.audit.models import AuditCheckpoint, AuditEntry, AuditLogState, AuditNode
from gateway.audit.nodes import DbNodeReader, read_planned
from gateway.audit.publish import CheckpointDirectory, PublicationRefused
from gateway.clock import Clock, utc
from gateway.errors import ConfigurationError
from gateway.pki.keystore import KeyStore
from gateway.store.db import transaction

log = logging.getLogger(__name__)
KEY_NAME = "gateway"
# "grad": the advisory lock of the one sequencer, paired with the schema's name, because the lock
# space is the whole database and each schema holds a log of its own (tests run several side by side).
_LOCK_KEY = 0x67726164
GAP_PATIENCE = timedelta(seconds=60)


def missing_for_good(later_recorded_at: datetime, now: datetime) -> bool:
    """Whether an entry absent while a later one was recorded at ``later_recorded_at`` is gone, not uncommitted.

    An index is given out in the transaction that records the entry; no transaction of the gateway's
    lasts anywhere near :data:`GAP_PATIENCE`.
    """
    return now - utc(later_recorded_at) > GAP_PATIENCE


def stored_leaf(entry: object, recorded: object) -> tuple[bytes, str | None]:
    """The leaf hash of a stored entry's bytes, and what is wrong with the row (None: nothing).

    A row the gateway wrote holds the entry's bytes and their leaf hash. A row written or changed
    behind its back may hold other bytes, or text (SQLite keeps whatever type it is given), or
    nothing: each is named here rather than left to fail as a ``TypeError`` further on.
    """
    if isinstance(entry, memoryview):
        entry = bytes(entry)
    if isinstance(recorded, memoryview):
        recorded = bytes(recorded)
    if isinstance(entry, str):
        return leaf_hash(entry.encode("utf-8")), "the entry is stored as text, not bytes: the gateway did not write it"
    if not isinstance(entry, bytes):
        return leaf_hash(b""), "the entry is empty (NULL): the gateway did not write it"
    computed = leaf_hash(entry)
    if not isinstance(recorded, bytes):
        return computed, "the entry's leaf hash is not stored as bytes: the gateway did not write it"
    if computed != recorded:
        return computed, "the entry was changed: it no longer hashes to its leaf hash"
    return computed, None


@dataclass
class Sequencer:
    sessions: sessionmaker[Session]
    keys: KeyStore
    clock: Clock
    batch: int = 10_000
    published: CheckpointDirectory | None = None  # checkpoints published outside the database
    # What stopped the last run, so that a standing refusal is logged once, not every few seconds.
    stopped: str | None = field(default=None, init=False)

    def run_once(self) -> int:
        """Integrate up to ``batch`` new entries and sign a checkpoint; returns the new tree size (0: nothing new).

        Refusals (a changed or foreign entry, a checkpoint that would not extend the published
        ones) are logged as CRITICAL and leave :attr:`stopped` set; they raise nothing.
        """
        key = self.keys.signing_key()
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ConfigurationError("checkpoints are signed with ECDSA: the gateway key must be an EC key")
        # Entries the intake wrote to audit_pending whose waiter did not index them (it stopped, say).
        sequence_pending(self.sessions, self.clock.now(), wait_for_lock=False)
        forget_sequenced(self.sessions, self.clock.now())
        try:
            with transaction(self.sessions) as session:
                signed = self._integrate(session, key)
        except PublicationRefused as exc:  # the transaction rolled back: nothing was signed
            self._stop(
                f"the audit sequencer signs nothing: {exc}. Witnesses and auditors holding the published "
                "checkpoints will see it; see docs/audit.md, What an insider with database access can do"
            )
            return 0
        if signed is None:
            return 0
        point, note = signed
        if self.published is not None:
            try:
                self.published.write(point, note)
            except (OSError, PublicationRefused) as exc:
                log.critical("audit checkpoint of %d entries was signed but not published: %s", point.size, exc)
        return point.size

    def _integrate(self, session: Session, key: ec.EllipticCurvePrivateKey) -> tuple[notes.Checkpoint, str] | None:
        if (
            session.get_bind().dialect.name == "postgresql"
            and not session.execute(
                text("SELECT pg_try_advisory_xact_lock(:key, hashtext(current_schema()))"), {"key": _LOCK_KEY}
            ).scalar()
        ):
            return None  # another sequencer is at work
        if session.get_bind().dialect.name == "sqlite":
            # Write first, so that this transaction reads the log as it is once it holds SQLite's
            # write lock: a sequencer in another process (`gateway audit sequence` beside `gateway
            # serve`) may have just committed and published, and a stale read would look shortened.
            session.execute(update(AuditLogState).where(AuditLogState.id == 1).values(size=AuditLogState.size))
        state = session.get(AuditLogState, 1)
        if state is None or state.integrated >= state.size:
            return None
        rows = session.execute(
            select(AuditEntry.leaf_index, AuditEntry.entry, AuditEntry.leaf_hash, AuditEntry.at)
            .where(AuditEntry.leaf_index >= state.integrated)
            .order_by(AuditEntry.leaf_index)
            .limit(self.batch)
        ).all()
        reader = DbNodeReader(session)
        size = state.integrated
        refused = None
        if rows and rows[0].leaf_index != size and missing_for_good(rows[0].at, self.clock.now()):
            refused = (
                f"the audit sequencer waits at position {size}: that entry is missing while later ones were "
                f"recorded more than {int(GAP_PATIENCE.total_seconds())} s ago (deleted); nothing after it is "
                "signed into the log"
            )
        for leaf_index, entry, recorded, _ in rows:
            if leaf_index != size:
                break  # not yet committed (or deleted: above): the next run takes it
            leaf, refused = stored_leaf(entry, recorded)
            if refused is not None:
                refused = f"the audit sequencer stops at position {leaf_index}: {refused} (not signed into the log)"
                break
            for level, index in append(size):
                if level == 0:
                    reader.pending[(0, index)] = leaf
                else:
                    reader.pending[(level, index)] = node_hash(
                        reader.hash_at(level - 1, 2 * index), reader.hash_at(level - 1, 2 * index + 1)
                    )
            size += 1
        if refused is not None:
            self._stop(refused)
        else:
            self.stopped = None
        if size == state.integrated:
            return None
        point = notes.Checkpoint(size=size, root=root(reader, size), time=self.clock.now())
        if self.published is not None:
            before = state.integrated
            self.published.check(point, lambda n: _root_at(session, reader, n, before))
        note = notes.sign(point, KEY_NAME, key)
        if reader.pending:  # one multi-row INSERT: the unit of work cost more than the hashing
            session.execute(
                insert(AuditNode), [{"level": lv, "index": ix, "hash": h} for (lv, ix), h in reader.pending.items()]
            )
        state.integrated = size
        session.add(AuditCheckpoint(size=size, root=point.root, at=point.time, note=note))
        log.info("audit log integrated to %d entries", size)
        return point, note

    def _stop(self, why: str) -> None:
        if why != self.stopped:
            log.critical("%s", why)
        self.stopped = why


def _root_at(session: Session, reader: NodeReader, size: int, stored: int) -> bytes:
    """The root of the first ``size`` entries: stored nodes in one query, or with this run's new ones."""
    if size <= stored:
        return read_planned(session, lambda nodes: root(nodes, size))
    return root(reader, size)
