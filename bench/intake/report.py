"""Figures of one benchmark run: per round, medians per server, the gateway/baseline ratios, the tables."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from load import LoadResult

# the gateway, parse + XSD, parse + XSD + signxml verification, parse + XSD + the gateway's own
# signature check (its VerifySignature)
TARGETS = ("gateway", "xsd", "xsd+sig", "xsd+dsig")
BASELINES = TARGETS[1:]
LABELS = {"gateway": "gateway", "xsd": "parse+XSD", "xsd+sig": "+signxml", "xsd+dsig": "+dsig"}
# summary key of the ratio gateway/baseline, and its column heading
RATIOS = {"xsd": ("ratio", "gw/XSD"), "xsd+sig": ("ratio_sig", "gw/+sig"), "xsd+dsig": ("ratio_dsig", "gw/+dsig")}
METRICS = (  # (key, label, format)
    ("rate", "accepted/s", "{:,.0f}"),
    ("p50_ms", "p50 latency ms", "{:.2f}"),
    ("p99_ms", "p99 latency ms", "{:.2f}"),
    ("max_ms", "max latency ms", "{:.2f}"),
    ("per_cpu_s", "accepted/server CPU-s", "{:,.0f}"),
    ("server_cpu_share", "server CPU use (cores)", "{:.2f}"),
    ("client_cpu_share", "load generator CPU (cores)", "{:.2f}"),
    ("machine_cpu_share", "whole machine CPU (cores)", "{:.2f}"),
)


@dataclass
class RoundFigures:
    """One target driven once: throughput, latency, and the CPU time its processes used."""

    target: str
    round: int
    requests: int
    failures: int
    elapsed_s: float
    rate: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    server_cpu_s: float
    per_cpu_s: float
    server_cpu_share: float
    client_cpu_share: float
    machine_cpu_share: float
    cpu_by_process: dict[str, float]
    statuses: dict[str, int] = field(default_factory=dict)
    first_failure: str | None = None
    offered_rate: float | None = None
    max_send_lag_ms: float = 0.0
    database_cpu_s: float | None = None  # PostgreSQL: the CPU of the gateway's database sessions' processes
    per_cpu_with_database_s: float | None = None
    cpu_by_thread: dict[str, float] = field(default_factory=dict)  # the gateway's: its workers' threads, by name


def round_figures(
    target: str,
    number: int,
    load: LoadResult,
    cpu_readings: tuple[dict[int, float], dict[int, float]],
    machine_busy_s: float,
    master: int,
    database_cpu_s: float | None = None,
    thread_readings: tuple[dict[str, float], dict[str, float]] | None = None,
) -> RoundFigures:
    """The figures of one round: the generator's result, the server's CPU seconds by pid before and
    after it, and the CPU seconds the whole machine was busy meanwhile; ``thread_readings``, the
    CPU seconds of its workers' threads by name before and after (``servers.thread_cpu_seconds``)."""
    cpu_before, cpu_after = cpu_readings
    by_process = {
        ("master" if pid == master else f"worker {pid}"): round(used - cpu_before.get(pid, 0.0), 3)
        for pid, used in cpu_after.items()
    }
    server_cpu = sum(by_process.values())
    p50, p99 = _percentiles(load)
    elapsed = load.elapsed_s or float("nan")
    accepted = load.requests - load.failures
    return RoundFigures(
        target=target,
        round=number,
        requests=load.requests,
        failures=load.failures,
        elapsed_s=load.elapsed_s,
        rate=accepted / elapsed,
        p50_ms=p50 * 1000,
        p99_ms=p99 * 1000,
        max_ms=max(load.latencies_s, default=float("nan")) * 1000,
        server_cpu_s=server_cpu,
        per_cpu_s=accepted / server_cpu if server_cpu else 0.0,
        server_cpu_share=server_cpu / elapsed,
        client_cpu_share=load.client_cpu_s / elapsed,
        machine_cpu_share=machine_busy_s / elapsed,
        cpu_by_process=by_process,
        statuses={str(k): v for k, v in load.statuses.items()},
        first_failure=load.first_failure,
        offered_rate=load.offered_rate,
        max_send_lag_ms=load.max_send_lag_s * 1000,
        database_cpu_s=database_cpu_s,
        per_cpu_with_database_s=(
            accepted / (server_cpu + database_cpu_s)
            if database_cpu_s is not None and server_cpu + database_cpu_s
            else None
        ),
        cpu_by_thread=(
            {name: round(used - thread_readings[0].get(name, 0.0), 3) for name, used in thread_readings[1].items()}
            if thread_readings is not None
            else {}
        ),
    )


def _percentiles(load: LoadResult) -> tuple[float, float]:
    if load.p50_s is not None and load.p99_s is not None:
        return load.p50_s, load.p99_s
    ordered = sorted(load.latencies_s)
    if not ordered:
        return float("nan"), float("nan")
    return _nearest_rank(ordered, 0.50), _nearest_rank(ordered, 0.99)


def _nearest_rank(ordered: Sequence[float], quantile: float) -> float:
    return ordered[max(0, min(len(ordered) - 1, math.ceil(quantile * len(ordered)) - 1))]


def summarise(rounds: Sequence[RoundFigures]) -> dict[str, Any]:
    """Medians over rounds per target, failure totals and the ratio gateway/baseline of each metric
    for each baseline (``ratio`` against parse + XSD, ``ratio_sig`` against parse + XSD + signxml,
    ``ratio_dsig`` against parse + XSD + the gateway's own signature check). A baseline not driven
    (``--servers``) has no entry, and its ratio is None."""
    summary: dict[str, Any] = {}
    for target in targets(rounds):
        mine = [r for r in rounds if r.target == target]
        summary[target] = {key: statistics.median(getattr(r, key) for r in mine) for key, _, _ in METRICS}
        with_database = [r.per_cpu_with_database_s for r in mine if r.per_cpu_with_database_s is not None]
        summary[target]["per_cpu_with_database_s"] = statistics.median(with_database) if with_database else None
        summary[target]["requests"] = sum(r.requests for r in mine)
        summary[target]["failures"] = sum(r.failures for r in mine)
    for baseline, (name, _) in RATIOS.items():
        summary[name] = (
            {key: _ratio(summary["gateway"][key], summary[baseline][key]) for key, _, _ in METRICS}
            if baseline in summary
            else None
        )
    return summary


def targets(rounds: Sequence[RoundFigures]) -> tuple[str, ...]:
    """The targets driven in ``rounds``, in the order of :data:`TARGETS`."""
    driven = {r.target for r in rounds}
    return tuple(target for target in TARGETS if target in driven)


def _ratio(gateway: float, baseline: float) -> float:
    return gateway / baseline if baseline else float("nan")


def table(summary: dict[str, Any], rounds: Sequence[RoundFigures]) -> str:
    """The result as text: medians and ratios, then every round with its worker CPU split."""
    driven = targets(rounds)
    ratios = [RATIOS[target] for target in driven if target in RATIOS]
    lines = [
        f"{'median of rounds':<28}"
        + "".join(f"{LABELS[target]:>11}" for target in driven)
        + "".join(f"{heading:>10}" for _, heading in ratios)
    ]
    for key, label, fmt in METRICS:
        values = "".join(f"{fmt.format(summary[target][key]):>11}" for target in driven)
        lines.append(f"{label:<28}{values}" + "".join(f"{summary[name][key]:>10.2f}" for name, _ in ratios))
    lines.append(
        f"{'failures / requests':<28}"
        + "".join(f"{summary[t]['failures']:>5}/{summary[t]['requests']:<5}" for t in driven)
    )
    lines.append("")
    lines.append(
        f"{'round':<6}{'target':<9}{'req':>7}{'acc/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}"
        f"{'acc/CPU-s':>10}{'fail':>6}  server CPU-s by process"
    )
    for r in rounds:
        split = ", ".join(f"{name} {used:.2f}" for name, used in r.cpu_by_process.items())
        stuck = f"  LOPSIDED ({share:.0%} on one worker)" if (share := lopsided(r)) else ""
        lines.append(
            f"{r.round:<6}{r.target:<9}{r.requests:>7}{r.rate:>8,.0f}{r.p50_ms:>8.2f}{r.p99_ms:>8.2f}"
            f"{r.max_ms:>8.1f}{r.per_cpu_s:>10,.0f}{r.failures:>6}  {split}{stuck}"
        )
    return "\n".join(lines)


def scaling(by_workers: dict[int, dict[str, Any]], tolerance: float) -> tuple[list[str], bool | None]:
    """Accepted per server CPU-second of each server for each worker count, the ratios per server
    CPU-second against the signature baselines (and against the gateway's own check per accepted/s
    too), and whether the gateway's stay within ``tolerance`` of the smallest count's; None when
    there is one count. A baseline that was not driven shows "-"."""
    counts = sorted(by_workers)
    lines = [
        f"{'workers':<9}{'gateway acc/s':>14}{'gateway /CPU-s':>16}{'parse+XSD /CPU-s':>18}"
        f"{'+signxml /CPU-s':>17}{'+dsig /CPU-s':>14}{'gw/+sig':>9}{'gw/+dsig':>10}{'gw/+dsig acc/s':>16}"
        f"{'gateway vs first':>18}{'gw+db /CPU-s':>14}"
    ]
    first = by_workers[counts[0]]["gateway"]["per_cpu_s"]
    worst = 0.0
    for count in counts:
        summary = by_workers[count]
        gateway = summary["gateway"]
        change = gateway["per_cpu_s"] / first - 1 if first else float("nan")
        worst = max(worst, abs(change))
        per_cpu = [_figure(summary.get(target, {}).get("per_cpu_s")) for target in BASELINES]
        lines.append(
            f"{count:<9}{gateway['rate']:>14,.0f}{gateway['per_cpu_s']:>16,.0f}"
            f"{per_cpu[0]:>18}{per_cpu[1]:>17}{per_cpu[2]:>14}"
            f"{_ratio_figure(summary, 'ratio_sig', 'per_cpu_s'):>9}"
            f"{_ratio_figure(summary, 'ratio_dsig', 'per_cpu_s'):>10}"
            f"{_ratio_figure(summary, 'ratio_dsig', 'rate'):>16}{change:>+18.0%}"
            f"{_figure(gateway.get('per_cpu_with_database_s')):>14}"
        )
    if len(counts) < 2:
        return lines, None
    within = worst <= tolerance
    lines.append(
        f"gateway accepted per server CPU-second, {counts[0]} to {counts[-1]} workers: largest change "
        f"{worst:.0%}, {'within' if within else 'NOT within'} {tolerance:.0%}"
    )
    lines.extend(baselines_own_change(by_workers))
    return lines, within


def baselines_own_change(by_workers: dict[int, dict[str, Any]]) -> list[str]:
    """For each baseline measured at every worker count: its own largest change of accepted per
    server CPU-second from the first count. A baseline holds no lock and shares nothing between its
    processes, so its change is what more processes cost any server on this machine (on two cores,
    four processes take turns at them), beside which the gateway's change is to be read."""
    counts = sorted(by_workers)
    lines = []
    for target in BASELINES:
        figures = [by_workers[count].get(target, {}).get("per_cpu_s") for count in counts]
        if not figures[0] or any(figure is None for figure in figures):
            continue
        changes = [figure / figures[0] - 1 for figure in figures]
        worst = max(changes, key=abs)
        steps = ", ".join(f"{change:+.0%}" for change in changes)
        lines.append(
            f"  the {LABELS[target]} baseline beside it, same workers: {steps} from the first count "
            f"(largest change {abs(worst):.0%}): what more processes cost a server with no shared state here"
        )
    return lines


def _ratio_figure(summary: dict[str, Any], name: str, key: str) -> str:
    ratios = summary.get(name)
    return "-" if ratios is None else f"{ratios[key]:.2f}"


def lopsided(figures: RoundFigures, limit: float = 0.8) -> float | None:
    """The share of the round's worker CPU that one worker used, when there were several workers and
    it is above ``limit`` (gthread keep-alive stickiness: every connection on one worker)."""
    workers = [used for name, used in figures.cpu_by_process.items() if name.startswith("worker")]
    total = sum(workers)
    if len(workers) < 2 or not total:
        return None
    share = max(workers) / total
    return share if share > limit else None


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def thread_split(rounds: Sequence[RoundFigures], target: str = "gateway") -> str | None:
    """Where ``target``'s worker processes spent their CPU, by thread, over all its rounds: each
    name's share of the threads' CPU and its CPU time per accepted message, largest first; None
    without readings. The names are those the gateway gives its threads (``gateway-request``,
    ``gateway-writer``, ``delivery-sweep``: ``gateway.monitoring.threads``); ``main`` is a worker
    process's main thread, the event loop that reads requests and writes answers; threads
    sharing a name are summed (the request threads)."""
    mine = [r for r in rounds if r.target == target and r.cpu_by_thread]
    used: dict[str, float] = {}
    for r in mine:
        for name, seconds in r.cpu_by_thread.items():
            used[name] = used.get(name, 0.0) + seconds
    total = sum(used.values())
    accepted = sum(r.requests - r.failures for r in mine)
    if total <= 0 or not accepted:
        return None
    parts = [
        f"{name} {100 * seconds / total:.0f} % ({1000 * seconds / accepted:.2f} ms a message)"
        for name, seconds in sorted(used.items(), key=lambda item: -item[1])
        if seconds / total >= 0.005
    ]
    return ", ".join(parts)


def foreign_load(rounds: Sequence[RoundFigures]) -> float:
    """The most CPU (in cores) that neither the server nor the load generator used in any round."""
    return max((r.machine_cpu_share - r.server_cpu_share - r.client_cpu_share for r in rounds), default=0.0)


def as_json(rounds: Sequence[RoundFigures]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rounds]
