"""Append rate: ``gateway.audit.log.record`` + commit, one entry per transaction as every event is recorded,
beside the least a durable log must do: insert the same entry bytes into a plain table and commit.

Both sides go through the same engine and ``transaction()`` helper into the same database, one
writer, in alternating rounds. The gateway side also encodes the event (canonical JSON), hashes
the leaf, and increments the counter row that gives each entry its leaf index; the baseline gets
the encoded bytes ready-made. After the rounds the sequencer integrates everything appended,
timed (entries folded into stored nodes per second, checkpoints signed every ``batch``).
"""

from __future__ import annotations

import statistics
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Column, Integer, LargeBinary, MetaData, Table, func, insert, select
from store import Store

from gateway.audit.entries import AuditEvent
from gateway.audit.log import record
from gateway.audit.sequencer import Sequencer
from gateway.clock import SystemClock
from gateway.pki.keystore import PrivateKey
from gateway.store.db import connect, session_factory, transaction

_METADATA = MetaData()
PLAIN = Table(
    "bench_plain_entries",
    _METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("entry", LargeBinary, nullable=False),
)


def accepted_event(number: int) -> AuditEvent:
    """A ``message.accepted`` entry as the intake records it (about 420 bytes)."""
    message_id = str(uuid.UUID(int=number + 1))
    digest = f"{number:064x}"
    return AuditEvent(
        kind="message.accepted",
        at=datetime.now(UTC),
        message_id=message_id,
        facts={
            "message_id": message_id,
            "sender": "111101080000000075",
            "recipient": "11110000000000001R",
            "service": "GraduateVerificationRequest",
            "body_sha256": digest,
            "signature_sha256": digest[::-1],
            "certificate_sha256": "ab" * 32,
        },
    )


class _EphemeralKeys:
    """A signing key for the sequencer's checkpoints (the figures do not depend on whose key it is)."""

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())

    def signing_key(self) -> PrivateKey:
        return self._key

    def certificate(self) -> x509.Certificate:
        raise NotImplementedError("the sequencer signs notes, it does not need the certificate")


def measure(store: Store, entries: int, rounds: int) -> dict[str, Any]:
    engine = connect(store.url)
    sessions = session_factory(engine)
    _METADATA.create_all(engine)
    events = [accepted_event(n) for n in range(entries * rounds * 2)]
    encoded = [e.encode() for e in events]
    results: dict[str, Any] = {"entries_per_round": entries, "rounds": []}
    try:
        for n in range(50):  # warm-up, both sides
            with transaction(sessions) as session:
                record(session, accepted_event(10_000_000 + n))
            with transaction(sessions) as session:
                session.execute(insert(PLAIN).values(entry=encoded[0]))
        cursor = 0
        for number in range(rounds):
            figures: dict[str, float] = {}
            sides = ["gateway", "baseline"] if number % 2 == 0 else ["baseline", "gateway"]
            for side in sides:
                batch = range(cursor, cursor + entries)
                cursor += entries
                started = time.perf_counter()
                if side == "gateway":
                    for i in batch:
                        with transaction(sessions) as session:
                            record(session, events[i])
                else:
                    for i in batch:
                        with transaction(sessions) as session:
                            session.execute(insert(PLAIN).values(entry=encoded[i]))
                figures[side] = entries / (time.perf_counter() - started)
            results["rounds"].append(figures)
        for side in ("gateway", "baseline"):
            results[f"{side}_per_s"] = statistics.median(r[side] for r in results["rounds"])
        results["ratio"] = results["gateway_per_s"] / results["baseline_per_s"]
        with transaction(sessions) as session:
            appended = session.scalar(select(func.count()).select_from(PLAIN))
        results["baseline_rows"] = appended
        sequencer = Sequencer(sessions, _EphemeralKeys(), SystemClock(), batch=10_000)
        started = time.perf_counter()
        integrated = 0
        while size := sequencer.run_once():
            integrated = size
        elapsed = time.perf_counter() - started
        results["sequencer_entries"] = integrated
        results["sequencer_per_s"] = integrated / elapsed if elapsed else float("nan")
    finally:
        engine.dispose()
    return results
