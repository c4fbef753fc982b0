"""Lock sampling at saturation: which lock, row or transaction the gateway's requests queue on.

A sampler runs in a thread while the gateway is driven and looks every ``interval`` (about 10 ms)
at what the gateway's database sessions hold and wait for. The result is, per resource, the share
of samples (hence of wall time) in which it was held or waited on, and the transactions' shape.

- **PostgreSQL** (:class:`PostgresSampler`): one query a sample over ``pg_stat_activity`` and
  ``pg_locks`` for the sessions whose ``application_name`` is the gateway's (run.py puts
  ``application_name`` in the gateway's database URL, so other users of the database are not
  counted). A resource counts as *waited on* in a sample when a gateway session waits for it (an
  ungranted lock; a row lock, which shows as a wait for a tuple lock or for the locking
  transaction's id, is named by the waiting statement: one hot row is one statement waiting over
  and over, while the row's place and the locking transaction change with every update) and as
  *held* when a session inside a
  transaction holds it in a mode that conflicts with itself (not AccessShare, RowShare or
  RowExclusive, which every reader and writer takes and which never queue each other; not a
  session's own transaction id or virtual id). A row updated without anyone waiting leaves no trace
  in ``pg_locks`` (PostgreSQL keeps row locks in the row), so an uncontended row is invisible: the
  figure measures queueing, which is what caps throughput. Transactions: the share of samples with
  at least one gateway transaction open, the mean number open and waiting for a lock, and their
  ages (``now() - xact_start``) of ``active`` and ``idle in transaction`` sessions.
- **SQLite** (:class:`SqliteSampler`): the database is a file, so there are no sessions to ask;
  but SQLite's locks are POSIX file locks, listed in ``/proc/locks``. In WAL mode a writer holds a
  write lock on byte 120 of the ``-shm`` file (WAL_WRITE_LOCK) from its first write to its commit,
  and every open transaction holds a read mark (bytes 123-127). The sampler reads those. The
  gateway also serialises its SQLite transactions, from the first statement (reads included) to
  the commit (``gateway.store.db.DatabaseLock``): threads of one process on a lock in its memory,
  which cannot be sampled from outside, and processes on an ``flock`` of ``<database>.lock``,
  held while any thread of a process has a transaction open. ``/proc/locks`` lists that one too,
  with the processes waiting for it (``->`` lines): the sampler reports it as the gateway's
  transaction lock, held or waited on, the waits of threads inside one process excepted.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine, text

from gateway.store.db import connect

INTERVAL_S = 0.010
STATEMENT_CHARS = 100  # of a waiting statement, to name a row lock
SHARABLE_MODES = frozenset({"AccessShareLock", "RowShareLock", "RowExclusiveLock"})
OWN_IDENTITY = frozenset({"transactionid", "virtualxid"})  # every transaction holds its own

# Only the lock rows that can matter are joined: waits, and locks held in a self-conflicting mode
# other than a transaction's own ids (the rest, hundreds a sample, would only cost the server CPU).
_SAMPLE = text(r"""
    SELECT a.pid, a.state, a.wait_event_type,
           CASE WHEN l.locktype IN ('tuple', 'transactionid')
                THEN left(regexp_replace(a.query, '\s+', ' ', 'g'), :chars) END AS query,
           extract(epoch FROM clock_timestamp() - a.xact_start) AS xact_age,
           l.locktype, l.relation::regclass::text AS relation, l.page, l.tuple,
           l.virtualxid, l.classid, l.objid, l.objsubid, l.mode, l.granted
    FROM pg_stat_activity a
    LEFT JOIN pg_locks l ON l.pid = a.pid AND (NOT l.granted OR (
        l.mode NOT IN ('AccessShareLock', 'RowShareLock', 'RowExclusiveLock')
        AND l.locktype NOT IN ('transactionid', 'virtualxid')))
    WHERE a.application_name = :application AND a.pid <> pg_backend_pid()
""")


@dataclass
class LockFigures:
    """What the sampler saw during one or more gateway rounds."""

    database: str
    samples: int = 0
    sampled_s: float = 0.0
    resources: Counter[str] = field(default_factory=Counter)  # samples held or waited on
    waited: Counter[str] = field(default_factory=Counter)  # samples with a waiter
    transaction_open_samples: int = 0  # samples with at least one transaction open
    open_transactions: int = 0  # summed over samples
    lock_waiters: int = 0  # summed over samples
    idle_in_transaction: int = 0  # summed over samples
    ages_s: list[float] = field(default_factory=list)  # each open transaction seen, its age
    note: str = ""
    errors: int = 0
    first_error: str | None = None
    sampler_cpu_s: float = 0.0  # the sampling thread's own CPU (in the load generator's process)
    backend_cpu_s: float | None = None  # PostgreSQL: the CPU of the sampler's server process

    def share(self, count: int) -> float:
        return count / self.samples if self.samples else float("nan")

    def top(self, n: int = 3) -> list[tuple[str, float, float]]:
        """The ``n`` resources most often held or waited on: (name, held-or-waited share, waited share)."""
        return [
            (name, self.share(count), self.share(self.waited[name])) for name, count in self.resources.most_common(n)
        ]

    def as_json(self) -> dict[str, Any]:
        ages = sorted(self.ages_s)
        return {
            "database": self.database,
            "samples": self.samples,
            "sampled_s": round(self.sampled_s, 3),
            "interval_s": self.sampled_s / self.samples if self.samples else None,
            "errors": self.errors,
            "first_error": self.first_error,
            "top_resources": [{"resource": r, "held_or_waited_share": s, "waited_share": w} for r, s, w in self.top(5)],
            "transaction_open_share": self.share(self.transaction_open_samples),
            "mean_open_transactions": self.share(self.open_transactions),
            "mean_lock_waiters": self.share(self.lock_waiters),
            "mean_idle_in_transaction": self.share(self.idle_in_transaction),
            "transaction_age_ms": {
                "p50": _rank(ages, 0.5) * 1000,
                "p99": _rank(ages, 0.99) * 1000,
                "max": _rank(ages, 1.0) * 1000,
            }
            if ages
            else None,
            "note": self.note,
            "sampler_cpu_s": self.sampler_cpu_s,
            "backend_cpu_s": self.backend_cpu_s,
        }


class Sampler(Protocol):
    figures: LockFigures

    def start(self) -> None: ...
    def stop(self) -> None: ...


class _SamplingThread:
    """Calls ``self._sample()`` every ``interval`` seconds between :meth:`start` and :meth:`stop`."""

    figures: LockFigures

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0

    def start(self) -> None:
        self._stopping.clear()
        self._started = time.perf_counter()
        self._thread = threading.Thread(target=self._loop, name="lock-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        self.figures.sampled_s += time.perf_counter() - self._started

    def _loop(self) -> None:
        cpu_before = time.thread_time()
        next_at = time.perf_counter()
        while not self._stopping.is_set():
            try:
                self._sample()
            except Exception as exc:  # a failed sample is counted, the run goes on
                self.figures.errors += 1
                self.figures.first_error = self.figures.first_error or f"{type(exc).__name__}: {exc}"[:300]
            next_at += self._interval
            self._stopping.wait(max(0.0, next_at - time.perf_counter()))
        self.figures.sampler_cpu_s += time.thread_time() - cpu_before

    def _sample(self) -> None:
        raise NotImplementedError


class PostgresSampler(_SamplingThread):
    """Samples ``pg_stat_activity`` and ``pg_locks`` for the sessions named ``application``."""

    def __init__(self, url: str, application: str, interval: float = INTERVAL_S) -> None:
        super().__init__(interval)
        self.figures = LockFigures(database="postgresql")
        self._application = application
        self._engine: Engine = connect(url)
        self._connection = self._engine.connect()
        self._backend = int(self._connection.execute(text("SELECT pg_backend_pid()")).scalar_one())
        self._connection.rollback()
        self._backend_cpu = _process_cpu(self._backend)
        self.figures.backend_cpu_s = 0.0 if self._backend_cpu is not None else None

    def start(self) -> None:
        self._backend_cpu = _process_cpu(self._backend)
        super().start()

    def stop(self) -> None:
        super().stop()
        after = _process_cpu(self._backend)
        if after is not None and self._backend_cpu is not None and self.figures.backend_cpu_s is not None:
            self.figures.backend_cpu_s += after - self._backend_cpu

    def close(self) -> None:
        self._connection.close()
        self._engine.dispose()

    def _sample(self) -> None:
        parameters = {"application": self._application, "chars": STATEMENT_CHARS}
        rows = self._connection.execute(_SAMPLE, parameters).mappings().all()
        self._connection.rollback()  # no snapshot kept open between samples
        self._count(rows)

    def _count(self, rows: Any) -> None:
        figures = self.figures
        figures.samples += 1
        sessions = {row["pid"]: row for row in rows}
        touched: set[str] = set()
        waited: set[str] = set()
        for row in rows:
            if row["locktype"] is None:
                continue
            in_transaction = row["xact_age"] is not None
            if not row["granted"]:
                waited.add(_resource(row))
            elif in_transaction and row["locktype"] not in OWN_IDENTITY and row["mode"] not in SHARABLE_MODES:
                touched.add(_resource(row))
        for name in touched | waited:
            figures.resources[name] += 1
        for name in waited:
            figures.waited[name] += 1
        open_now = [s for s in sessions.values() if s["xact_age"] is not None and s["state"] != "idle"]
        figures.transaction_open_samples += bool(open_now)
        figures.open_transactions += len(open_now)
        figures.lock_waiters += sum(1 for s in sessions.values() if s["wait_event_type"] == "Lock")
        figures.idle_in_transaction += sum(1 for s in open_now if s["state"] == "idle in transaction")
        figures.ages_s.extend(float(s["xact_age"]) for s in open_now)


def _resource(row: Any) -> str:
    """A name for the resource of a ``pg_locks`` row. Row locks are named by the statement that
    waits for them: an UPDATE writes a new version of the row at a new place (ctid) and a wait for a
    row already locked is a wait for the locking transaction's id, so neither names one row across
    the run; the waiting statement does (one hot row is one statement waiting over and over)."""
    kind = row["locktype"]
    if kind in ("tuple", "transactionid"):
        query = row["query"] or "(a statement that has just finished)"
        statement = query + ("…" if len(query) >= STATEMENT_CHARS else "")
        return f'row lock waited for by "{statement}"'
    if kind in ("relation", "extend"):
        return f"{'table' if kind == 'relation' else 'extension of'} {row['relation']}"
    if kind == "page":
        return f"page {row['relation']} {row['page']}"
    if kind == "advisory":
        return f"advisory lock ({row['classid']},{row['objid']},{row['objsubid']})"
    if kind == "virtualxid":
        return f"virtual transaction {row['virtualxid']}"
    return f"{kind} ({row['classid']},{row['objid']},{row['objsubid']})"


WAL_WRITE_LOCK = 120
GATEWAY_LOCK = "the gateway's transaction lock (flock on gateway.db.lock)"
WAL_READ_LOCKS = range(123, 128)


class SqliteSampler(_SamplingThread):
    """Samples SQLite's WAL locks on ``<database>-shm`` in ``/proc/locks`` (see the module's docstring)."""

    def __init__(self, database: Path, interval: float = INTERVAL_S) -> None:
        super().__init__(interval)
        self.figures = LockFigures(
            database="sqlite",
            note="the gateway's transaction lock (gateway.store.db.DatabaseLock, taken at the first statement, "
            "reads included) is sampled as its flock on gateway.db.lock, which a worker process holds "
            "while any of its threads has a transaction open; a thread waiting for another thread of its "
            "own process is not seen",
        )
        self._shm = Path(f"{database}-shm")
        self._lock_file = Path(f"{database}.lock")
        self._key: str | None = None
        self._lock_key: str | None = None

    def _sample(self) -> None:
        if self._key is None:
            self._key = _file_key(self._shm)
        if self._lock_key is None and self._lock_file.exists():  # made by the gateway's first transaction
            self._lock_key = _file_key(self._lock_file)
        writing = reading = 0
        held = waited = False
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()
            waiter = "->" in fields
            if waiter:
                fields.remove("->")
            if len(fields) < 8:
                continue  # an odd line
            if fields[5] == self._lock_key and fields[1] == "FLOCK":
                held = held or not waiter
                waited = waited or waiter
                continue
            if waiter or fields[5] != self._key:
                continue
            start = int(fields[6])
            if start == WAL_WRITE_LOCK and fields[3] == "WRITE":
                writing = 1
            elif start in WAL_READ_LOCKS:
                reading += 1
        figures = self.figures
        figures.samples += 1
        if writing:
            figures.resources["SQLite write lock (WAL_WRITE_LOCK)"] += 1
        if held or waited:
            figures.resources[GATEWAY_LOCK] += 1
            figures.waited[GATEWAY_LOCK] += waited
        # the read marks are per process, not per connection: they tell whether any transaction is open
        figures.transaction_open_samples += bool(reading or writing)


def _file_key(path: Path) -> str:
    """How ``/proc/locks`` names a file: device (major:minor, in hex) and inode."""
    info = os.stat(path)
    return f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"


def _process_cpu(pid: int) -> float | None:
    """User + system CPU seconds of a local process, or None (a remote database, no such process)."""
    try:
        text_ = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text_[text_.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rank(ordered: list[float], quantile: float) -> float:
    return ordered[max(0, min(len(ordered) - 1, round(quantile * len(ordered)) - 1))]


def describe(figures: LockFigures, limit: float) -> list[str]:
    """The sampler's findings as text lines; ``limit`` is the share above which a resource is flagged."""
    if not figures.samples:
        return [f"lock sampling ({figures.database}): no samples"]
    interval_ms = figures.sampled_s / figures.samples * 1000
    failed = f", {figures.errors} failed (first: {figures.first_error})" if figures.errors else ""
    lines = [
        f"lock sampling ({figures.database}): {figures.samples} samples over {figures.sampled_s:.1f} s "
        f"of gateway rounds (one every {interval_ms:.1f} ms){failed}"
    ]
    top = figures.top()
    if top:
        name, share, waited = top[0]
        verdict = "OVER" if share > limit else "within"
        if share > limit and figures.database == "postgresql" and waited <= limit:
            verdict = (
                f"held, though waited on no more than {limit:.0%} of the time (a lock taken with a try, "
                "or one few requests need); OVER"
            )
        if figures.database == "postgresql":
            waiters = f" (a waiter present {waited:.0%})"
        elif name == GATEWAY_LOCK:
            waiters = f" (another process waiting {waited:.0%}; threads waiting inside a process are not seen)"
        else:
            waiters = " (its waiters wait for the gateway's transaction lock, which is held longer)"
        lines.append(
            f"  most-held resource: {name}: held or waited on {share:.0%} of wall time{waiters}; "
            f"{verdict} the {limit:.0%} limit"
        )
        for name, share, waited in top[1:]:
            lines.append(f"  next: {name}: {share:.0%} (waited {waited:.0%})")
    else:
        lines.append("  no lock held in a self-conflicting mode and none waited for in any sample")
    lines.append(
        f"  transactions: at least one open {figures.share(figures.transaction_open_samples):.0%} of wall time"
        + (
            f"; on average {figures.share(figures.open_transactions):.1f} open, "
            f"{figures.share(figures.lock_waiters):.1f} waiting for a lock, "
            f"{figures.share(figures.idle_in_transaction):.1f} idle in transaction"
            if figures.database == "postgresql"
            else ""
        )
    )
    if figures.ages_s:
        ages = sorted(figures.ages_s)
        lines.append(
            f"  open transactions' age when sampled: p50 {_rank(ages, 0.5) * 1000:.1f} ms, "
            f"p99 {_rank(ages, 0.99) * 1000:.1f} ms, max {ages[-1] * 1000:.1f} ms "
            f"(the longest transaction: at least {ages[-1] / figures.sampled_s:.1%} of the sampled time)"
        )
    cost = f"sampling cost: {figures.sampler_cpu_s:.2f} CPU-s in the load generator's process"
    if figures.backend_cpu_s is not None:
        cost += f", {figures.backend_cpu_s:.2f} CPU-s in its PostgreSQL server process"
    share = (figures.sampler_cpu_s + (figures.backend_cpu_s or 0.0)) / figures.sampled_s
    lines.append(f"  {cost} ({share:.0%} of a core)")
    if figures.note:
        lines.append(f"  note: {figures.note}")
    return lines
