"""Inclusion and consistency proof time in a tree of N entries, beside the raw read of the same nodes.

The tree is built in bulk (``store.bulk_tree``) with one signed checkpoint of N entries. Then, for
the same random leaves (and random older sizes), alternating in rounds:

- **gateway**: ``gateway.audit.proofs.inclusion`` / ``consistency``, what ``/log/proof/...`` and
  ``gateway audit prove`` run, one transaction per proof as a request has (the latest checkpoint,
  the planned nodes in one query, the checkpoint of that size);
- **baseline**: the least any proof server must do: one ``SELECT`` of exactly the nodes that proof
  needs (known beforehand) by primary key, on a connection held open, through the raw driver.

Every gateway proof is checked against the checkpoint's root outside the timing.
"""

from __future__ import annotations

import random
import sqlite3
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import update
from store import Store, TreeBuilder, synthetic_leaves, write_nodes

from gateway.audit import checkpoint as notes
from gateway.audit import proofs
from gateway.audit.merkle import consistency_proof, inclusion_proof, verify_consistency, verify_inclusion
from gateway.audit.merkle import root as merkle_root
from gateway.audit.models import AuditCheckpoint, AuditLogState
from gateway.audit.nodes import read_planned
from gateway.store.db import connect, session_factory, transaction


class _Planner:
    def __init__(self) -> None:
        self.wanted: list[tuple[int, int]] = []

    def hash_at(self, level: int, index: int) -> bytes:
        self.wanted.append((level, index))
        return b"\x00" * 32


def plan(compute: Callable[[Any], object]) -> list[tuple[int, int]]:
    planner = _Planner()
    compute(planner)
    return sorted(set(planner.wanted))


def build_tree(store: Store, size: int) -> dict[str, Any]:
    """N leaves, their nodes and one signed checkpoint of N entries; returns how long it took."""
    started = time.perf_counter()
    builder = TreeBuilder()

    def nodes() -> Any:
        for leaf in synthetic_leaves(size):
            yield from builder.add(leaf)

    written = write_nodes(store, nodes())
    key = ec.generate_private_key(ec.SECP256R1())
    point = notes.Checkpoint(size=size, root=builder.root(), time=datetime.now(UTC))
    engine = connect(store.url)
    try:
        with transaction(session_factory(engine)) as session:
            session.add(
                AuditCheckpoint(size=size, root=point.root, at=point.time, note=notes.sign(point, "gateway", key))
            )
            session.execute(update(AuditLogState).values(size=size, integrated=size))
    finally:
        engine.dispose()
    return {"nodes": written, "build_s": round(time.perf_counter() - started, 1), "root": point.root}


class RawReader:
    """The baseline: the driver's own connection and one SELECT by primary key per proof."""

    def __init__(self, store: Store) -> None:
        self.store = store
        if store.kind == "sqlite":
            assert store.sqlite_path is not None
            self._sqlite: sqlite3.Connection | None = sqlite3.connect(store.sqlite_path)
            self._pg: psycopg.Connection[Any] | None = None
        else:
            assert store.postgres_url is not None
            self._sqlite = None
            self._pg = psycopg.connect(store.postgres_url, options=f"-csearch_path={store.schema}", autocommit=True)

    def read(self, coordinates: Sequence[tuple[int, int]]) -> list[bytes]:
        by_level: dict[int, list[int]] = {}
        for level, index in coordinates:
            by_level.setdefault(level, []).append(index)
        mark = "?" if self._sqlite is not None else "%s"
        terms = [f'(level = {mark} AND "index" IN ({",".join(mark for _ in ixs)}))' for ixs in by_level.values()]
        values = [value for level, ixs in by_level.items() for value in (level, *ixs)]
        statement = f'SELECT level, "index", hash FROM audit_nodes WHERE {" OR ".join(terms)}'  # noqa: S608 (placeholders)
        if self._sqlite is not None:
            rows = self._sqlite.execute(statement, values).fetchall()
        else:
            assert self._pg is not None
            rows = self._pg.execute(statement, values).fetchall()
        if len(rows) != len(coordinates):
            raise RuntimeError("the baseline did not find every node")
        return [bytes(row[2]) for row in rows]

    def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
        if self._pg is not None:
            self._pg.close()


def _figures(timed: tuple[list[float], float]) -> dict[str, float]:
    latencies, cpu = timed
    ordered = sorted(latencies)
    return {
        "per_s": len(ordered) / sum(ordered),
        "cpu_us": cpu / len(ordered) * 1e6,  # this process's CPU per proof (not the database server's)
        "p50_us": ordered[len(ordered) // 2] * 1e6,
        "p99_us": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e6,
    }


def measure(store: Store, size: int, samples: int, rounds: int, seed: int) -> dict[str, Any]:
    """Build the tree of ``size``, then time ``samples`` proofs of each kind per side, in ``rounds``."""
    built = build_tree(store, size)
    rng = random.Random(seed)
    leaves = [rng.randrange(size) for _ in range(samples)]
    olds = [rng.randrange(1, size) for _ in range(samples)]
    inclusion_plans = [plan(lambda r, i=i: inclusion_proof(r, i, size)) for i in leaves]
    consistency_plans = [plan(lambda r, m=m: consistency_proof(r, m, size)) for m in olds]
    engine = connect(store.url)
    sessions = session_factory(engine)
    raw = RawReader(store)
    results: dict[str, Any] = {"size": size, "nodes": built["nodes"], "build_s": built["build_s"], "rounds": []}
    try:
        # Warm the page cache and the connection pools alike for both sides.
        for index, coordinates in list(zip(leaves, inclusion_plans, strict=True))[:200]:
            with transaction(sessions) as session:
                proofs.inclusion(session, index=index)
            raw.read(coordinates)
        _check(sessions, leaves[:200], olds[:200], size)
        per_round = max(1, samples // rounds)
        for number in range(rounds):
            part = slice(number * per_round, (number + 1) * per_round)
            timings: dict[str, tuple[list[float], float]] = {}
            sides = [("gateway", True), ("baseline", False)]
            for side, is_gateway in sides if number % 2 == 0 else reversed(sides):
                timings[f"{side}_inclusion"] = _time_inclusion(
                    sessions, raw, leaves[part], inclusion_plans[part], is_gateway
                )
                timings[f"{side}_consistency"] = _time_consistency(
                    sessions, raw, olds[part], consistency_plans[part], is_gateway
                )
            results["rounds"].append({name: _figures(values) for name, values in timings.items()})
        results["verify_us"] = _verify_cost(sessions, leaves[:500], olds[:500], size)
    finally:
        raw.close()
        engine.dispose()
    for name in ("gateway_inclusion", "baseline_inclusion", "gateway_consistency", "baseline_consistency"):
        results[name] = {
            metric: statistics.median(r[name][metric] for r in results["rounds"])
            for metric in ("per_s", "p50_us", "p99_us", "cpu_us")
        }
    results["inclusion_ratio"] = results["gateway_inclusion"]["per_s"] / results["baseline_inclusion"]["per_s"]
    results["consistency_ratio"] = results["gateway_consistency"]["per_s"] / results["baseline_consistency"]["per_s"]
    results["nodes_per_inclusion"] = statistics.mean(len(p) for p in inclusion_plans)
    results["nodes_per_consistency"] = statistics.mean(len(p) for p in consistency_plans)
    return results


def _time_inclusion(
    sessions: Any, raw: RawReader, leaves: list[int], plans: list[list[tuple[int, int]]], gateway: bool
) -> tuple[list[float], float]:
    latencies = []
    cpu = time.process_time()
    for index, coordinates in zip(leaves, plans, strict=True):
        started = time.perf_counter()
        if gateway:
            with transaction(sessions) as session:
                proofs.inclusion(session, index=index)
        else:
            raw.read(coordinates)
        latencies.append(time.perf_counter() - started)
    return latencies, time.process_time() - cpu


def _time_consistency(
    sessions: Any, raw: RawReader, olds: list[int], plans: list[list[tuple[int, int]]], gateway: bool
) -> tuple[list[float], float]:
    latencies = []
    cpu = time.process_time()
    for old, coordinates in zip(olds, plans, strict=True):
        started = time.perf_counter()
        if gateway:
            with transaction(sessions) as session:
                proofs.consistency(session, old)
        else:
            raw.read(coordinates)
        latencies.append(time.perf_counter() - started)
    return latencies, time.process_time() - cpu


def _check(sessions: Any, leaves: list[int], olds: list[int], size: int) -> None:
    """Every proof must verify against the signed root (and the old roots it implies)."""
    with transaction(sessions) as session:
        root = proofs.latest_checkpoint(session).root
        for index in leaves:
            proof = proofs.inclusion(session, index=index)
            if not verify_inclusion(proof.leaf_hash, index, size, proof.hashes, root):
                raise RuntimeError(f"the inclusion proof of leaf {index} does not verify")
        for old in olds:
            # The old root from the stored nodes: the proof must tie it to the signed root.
            old_root = read_planned(session, lambda reader, m=old: merkle_root(reader, m))
            proof = proofs.consistency(session, old)
            if not verify_consistency(old, size, old_root, root, proof.hashes):
                raise RuntimeError(f"the consistency proof from {old} does not verify")


def _verify_cost(sessions: Any, leaves: list[int], olds: list[int], size: int) -> dict[str, float]:
    """What checking a proof costs its receiver (pure hashing), in microseconds."""
    with transaction(sessions) as session:
        root = proofs.latest_checkpoint(session).root
        inclusions = [proofs.inclusion(session, index=i) for i in leaves]
        consistencies = [
            (proofs.consistency(session, m), read_planned(session, lambda reader, m=m: merkle_root(reader, m)))
            for m in olds
        ]
    started = time.perf_counter()
    for proof in inclusions:
        verify_inclusion(proof.leaf_hash, proof.leaf_index, size, proof.hashes, root)
    inclusion_us = (time.perf_counter() - started) / len(inclusions) * 1e6
    started = time.perf_counter()
    for consistency, old_root in consistencies:
        verify_consistency(consistency.first, size, old_root, root, consistency.hashes)
    return {"inclusion": inclusion_us, "consistency": (time.perf_counter() - started) / len(consistencies) * 1e6}
