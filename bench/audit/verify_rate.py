"""``gateway audit verify`` entries per second, beside plain SHA-256 hashing of the same entry bytes.

The log is built in bulk: realistic ``message.accepted`` entries (canonical JSON, about 420 bytes),
their leaf hashes, the sequencer's nodes, and a signed checkpoint every 10,000 entries (the
sequencer's batch), exactly as the sequencer would have stored them. Then, alternating in rounds:

- **gateway**: ``gateway.audit.verify.verify_log``, the function ``gateway audit verify`` runs:
  every entry read in index order and hashed, compared with its recorded and integrated leaf,
  folded into the tree, and every checkpoint's signature and root checked;
- **baseline, hash only**: ``hashlib.sha256(entry)`` over the same bytes held in memory;
- **baseline, read + hash**: the same entries read from the database in the same chunks, hashed.
"""

from __future__ import annotations

import hashlib
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from append import accepted_event
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select, update
from store import Store, TreeBuilder, write_entries, write_nodes

from gateway.audit import checkpoint as notes
from gateway.audit.merkle import leaf_hash
from gateway.audit.models import AuditCheckpoint, AuditEntry, AuditLogState
from gateway.audit.verify import CHUNK, verify_log
from gateway.store.db import connect, session_factory, transaction

CHECKPOINT_EVERY = 10_000


def build_log(store: Store, count: int) -> tuple[list[bytes], ec.EllipticCurvePublicKey, float]:
    """``count`` entries with their nodes and checkpoints; the entries' bytes, the key, seconds taken."""
    started = time.perf_counter()
    at = datetime.now(UTC)
    stamp = at.isoformat() if store.kind == "postgresql" else at.strftime("%Y-%m-%d %H:%M:%S.%f")
    entries = [accepted_event(n).encode() for n in range(count)]
    leaves = [leaf_hash(e) for e in entries]
    write_entries(
        store,
        ((i, stamp, "message.accepted", str(i), entry, leaves[i]) for i, entry in enumerate(entries)),
    )
    builder = TreeBuilder()
    roots: dict[int, bytes] = {}

    def nodes() -> Iterator[tuple[int, int, bytes]]:
        for leaf in leaves:
            yield from builder.add(leaf)
            if builder.size % CHECKPOINT_EVERY == 0 or builder.size == count:
                roots[builder.size] = builder.root()

    write_nodes(store, nodes())
    key = ec.generate_private_key(ec.SECP256R1())
    engine = connect(store.url)
    try:
        with transaction(session_factory(engine)) as session:
            for size, root in sorted(roots.items()):
                point = notes.Checkpoint(size=size, root=root, time=at)
                session.add(AuditCheckpoint(size=size, root=root, at=at, note=notes.sign(point, "gateway", key)))
            session.execute(update(AuditLogState).values(size=count, integrated=count))
    finally:
        engine.dispose()
    return entries, key.public_key(), time.perf_counter() - started


def measure(store: Store, count: int, rounds: int) -> dict[str, Any]:
    entries, public_key, build_s = build_log(store, count)
    engine = connect(store.url)
    sessions = session_factory(engine)
    results: dict[str, Any] = {"entries": count, "build_s": round(build_s, 1), "rounds": []}
    try:
        for number in range(rounds):
            figures: dict[str, float] = {}
            sides = ["gateway", "hash_only", "read_and_hash"]
            for side in sides if number % 2 == 0 else reversed(sides):
                started = time.perf_counter()
                if side == "gateway":
                    with transaction(sessions) as session:
                        report = verify_log(session, public_key)
                    if not report.ok or report.entries != count:
                        raise RuntimeError(f"verify found problems in an untouched log: {report.problems[:3]}")
                    results["checkpoints"] = report.checkpoints
                elif side == "hash_only":
                    for entry in entries:
                        hashlib.sha256(entry).digest()
                else:
                    _read_and_hash(sessions, count)
                figures[side] = count / (time.perf_counter() - started)
            results["rounds"].append(figures)
    finally:
        engine.dispose()
    for side in ("gateway", "hash_only", "read_and_hash"):
        results[f"{side}_per_s"] = statistics.median(r[side] for r in results["rounds"])
    results["ratio_to_hash_only"] = results["gateway_per_s"] / results["hash_only_per_s"]
    results["ratio_to_read_and_hash"] = results["gateway_per_s"] / results["read_and_hash_per_s"]
    return results


def _read_and_hash(sessions: Any, count: int) -> None:
    with transaction(sessions) as session:
        for start in range(0, count, CHUNK):
            for (entry,) in session.execute(
                select(AuditEntry.entry)
                .where(AuditEntry.leaf_index >= start, AuditEntry.leaf_index < start + CHUNK)
                .order_by(AuditEntry.leaf_index)
            ):
                hashlib.sha256(entry).digest()
