"""What a phase measures: from the gateway's own records, and CPU time from /proc.

Each delivery's acceptance (``messages.received_at``) and acknowledgement (``deliveries.delivered_at``)
are the gateway's clock, read back from its database after the phase.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import processes
from processes import Process
from sqlalchemy import func, select

from gateway.messages.models import Delivery, Message
from gateway.store.db import connect


def delivered(database_url: str, message_ids: Sequence[str]) -> int:
    """How many of ``message_ids`` have been delivered."""
    engine = connect(database_url)
    try:
        with engine.connect() as connection:
            query = (
                select(func.count())
                .select_from(Delivery)
                .join(Message, Message.id == Delivery.message_pk)
                .where(Delivery.status == "delivered", Message.message_id.in_(list(message_ids)))
            )
            return int(connection.execute(query).scalar_one())
    finally:
        engine.dispose()


def wait_delivered(database_url: str, message_ids: Sequence[str], timeout: float) -> None:
    """Return once every one of ``message_ids`` is delivered; raises ``RuntimeError`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while (done := delivered(database_url, message_ids)) < len(message_ids):
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {done} of {len(message_ids)} messages delivered after {timeout:.0f} s")
        time.sleep(0.25)


def timings(database_url: str, message_ids: Sequence[str]) -> list[tuple[datetime, datetime, int]]:
    """(accepted at, delivered at, attempts) of each message's delivery."""
    engine = connect(database_url)
    try:
        with engine.connect() as connection:
            query = (
                select(Message.received_at, Delivery.delivered_at, Delivery.attempts)
                .join(Delivery, Delivery.message_pk == Message.id)
                .where(Message.message_id.in_(list(message_ids)))
            )
            return [(r[0], r[1], r[2]) for r in connection.execute(query).all()]
    finally:
        engine.dispose()


def figures(rows: list[tuple[datetime, datetime, int]], mode: str) -> dict[str, Any]:
    """End to end: messages / (last acknowledgement - first acceptance); drain: from first to last
    acknowledgement (the worker's start-up excluded, as the baseline's is)."""
    accepted = [r[0] for r in rows]
    acked = [r[1] for r in rows]
    latencies = sorted((d - a).total_seconds() * 1000 for a, d, _ in rows)
    start = min(accepted) if mode == "end-to-end" else min(acked)
    seconds = (max(acked) - start).total_seconds()
    count = len(rows) if mode == "end-to-end" else len(rows) - 1
    return {
        "mode": mode,
        "messages": len(rows),
        "seconds": seconds,
        "delivered_per_s": count / seconds,
        "latency_ms_p50": statistics.median(latencies),
        "latency_ms_p99": latencies[int(0.99 * (len(latencies) - 1))],
        "attempts_max": max(r[2] for r in rows),
        "slowest_percent_accepted_s": slowest_percent(rows),
    }


def slowest_percent(rows: list[tuple[datetime, datetime, int]]) -> list[float]:
    """When the slowest 1 % of the messages (at least one) were accepted: seconds after the first
    acceptance, in order. Tells a burst at a phase's start (a queue in front of them) from
    stalls spread over it."""
    first = min(r[0] for r in rows)
    by_latency = sorted(rows, key=lambda r: r[1] - r[0], reverse=True)
    slowest = by_latency[: max(1, len(rows) // 100)]
    return sorted(round((a - first).total_seconds(), 2) for a, _, _ in slowest)


class Meter:
    """CPU seconds of the named processes and of the whole machine over a phase."""

    def __init__(self, watched: dict[str, Process]) -> None:
        self.watched = watched
        self.before = {name: processes.session_cpu_seconds(p.pid) for name, p in watched.items()}
        self.machine = processes.machine_busy_seconds()
        self.wall = time.perf_counter()

    def read(self) -> dict[str, float]:
        wall = time.perf_counter() - self.wall
        used = {
            f"{name}_cpu_s": processes.session_cpu_seconds(p.pid) - self.before[name]
            for name, p in self.watched.items()
        }
        return {**used, "machine_busy_cores": (processes.machine_busy_seconds() - self.machine) / wall, "wall_s": wall}
