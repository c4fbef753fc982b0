"""The sequencer: the only writer of the tree. It folds new entries into stored nodes and signs a checkpoint.

One at a time across processes: on PostgreSQL it holds a transaction-scoped advisory lock (a second
sequencer finds it taken and does nothing); on SQLite the process-wide transaction lock of
``gateway.store.db`` already serialises it. Entries carry their leaf index from ``record``; the
sequencer reads them in index order from the last integrated one, stores the complete subtrees
each new leaf closes (``merkle.append``), and signs a checkpoint for the new size.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from gateway.audit import checkpoint as notes
from gateway.audit.merkle import append, node_hash, root
from gateway.audit.models import AuditCheckpoint, AuditEntry, AuditLogState, AuditNode
from gateway.audit.nodes import DbNodeReader
from gateway.clock import Clock
from gateway.errors import ConfigurationError
from gateway.pki.keystore import KeyStore
from gateway.store.db import transaction

log = logging.getLogger(__name__)
KEY_NAME = "gateway"
# "grad": the advisory lock of the one sequencer, paired with the schema's name, because the lock
# space is the whole database and each schema holds a log of its own (tests run several side by side).
_LOCK_KEY = 0x67726164


@dataclass
class Sequencer:
    sessions: sessionmaker[Session]
    keys: KeyStore
    clock: Clock
    batch: int = 10_000

    def run_once(self) -> int:
        """Integrate up to ``batch`` new entries and sign a checkpoint; returns the new tree size (0: nothing new)."""
        key = self.keys.signing_key()
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ConfigurationError("checkpoints are signed with ECDSA: the gateway key must be an EC key")
        with transaction(self.sessions) as session:
            if (
                session.get_bind().dialect.name == "postgresql"
                and not session.execute(
                    text("SELECT pg_try_advisory_xact_lock(:key, hashtext(current_schema()))"), {"key": _LOCK_KEY}
                ).scalar()
            ):
                return 0  # another sequencer is at work
            state = session.get(AuditLogState, 1)
            if state is None or state.integrated >= state.size:
                return 0
            rows = session.execute(
                select(AuditEntry.leaf_index, AuditEntry.leaf_hash)
                .where(AuditEntry.leaf_index >= state.integrated)
                .order_by(AuditEntry.leaf_index)
                .limit(self.batch)
            ).all()
            reader = DbNodeReader(session)
            size = state.integrated
            for leaf_index, leaf in rows:
                if leaf_index != size:
                    break  # not yet committed: the next run takes it
                for level, index in append(size):
                    if level == 0:
                        reader.pending[(0, index)] = leaf
                    else:
                        reader.pending[(level, index)] = node_hash(
                            reader.hash_at(level - 1, 2 * index), reader.hash_at(level - 1, 2 * index + 1)
                        )
                size += 1
            if size == state.integrated:
                return 0
            session.add_all(AuditNode(level=lv, index=ix, hash=h) for (lv, ix), h in reader.pending.items())
            state.integrated = size
            now = self.clock.now()
            point = notes.Checkpoint(size=size, root=root(reader, size), time=now)
            session.add(AuditCheckpoint(size=size, root=point.root, at=now, note=notes.sign(point, KEY_NAME, key)))
            log.info("audit log integrated to %d entries", size)
            return size
