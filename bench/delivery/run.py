"""bench/delivery: delivered messages per second, accept to the recipient's acknowledgement, beside
dramatiq's raw drain rate on the same Redis, in one run.

One run: a throw-away gateway home (``gateway init --demo``, keys shared by both setups), a push
recipient (the SDK's recipient app under gunicorn, verifying every delivery), pre-signed
destination registrations, then

1. the **embedded default**: ``gateway serve`` with SQLite and its in-process broker and worker;
   the messages are sent and delivered at once (end to end);
2. **PostgreSQL + Redis** (a fresh schema, a redis-server of the run's own): ``gateway serve`` and
   ``gateway worker --threads T``: a full queue drained with dramatiq's default prefetch, the same
   with ``--prefetch P``, then end to end with ``--prefetch P``;
3. the **baseline**: ``drain.py``, a trivial dramatiq actor draining the same Redis with the same
   threads and prefetch, before and after the gateway's phases.

Prints the figures and the ratios gateway / baseline and writes ``bench/results/delivery-<ts>.json``.
Every process it starts is stopped on the way out, also on Ctrl-C, SIGTERM or an error.

    .venv/bin/python bench/delivery/run.py [--messages 600] [--threads 8] [--prefetch 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import processes
from exchange import Exchange, gateway_cli, push_to, scratch_schema
from measure import Meter, figures, timings, wait_delivered
from openloop import SLOW_RECIPIENT, originate_slow, send_at_rate, slow_states
from processes import LOOPBACK, Process
from stored import StoredIntake
from traffic import ROOT, send_all, sign_envelopes

HERE = Path(__file__).resolve().parent


def parse_options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=600, help="messages per gateway phase (600)")
    parser.add_argument("--connections", type=int, default=8, help="concurrent sending connections (8)")
    parser.add_argument("--threads", type=int, default=8, help="gateway worker and baseline threads (8)")
    parser.add_argument("--prefetch", type=int, default=1000, help="the tuned prefetch (1000)")
    parser.add_argument(
        "--per-recipient", type=int, default=0, help="gateway worker --per-recipient (0: its default, half the threads)"
    )
    parser.add_argument("--baseline-messages", type=int, default=20_000, help="messages of each drain (20000)")
    parser.add_argument("--offered-rate", type=float, default=300.0, help="fixed-rate phases: messages/s (300)")
    parser.add_argument("--rate-messages", type=int, default=3000, help="messages of each fixed-rate phase (3000)")
    parser.add_argument("--slow-messages", type=int, default=200, help="messages to the recipient that times out")
    parser.add_argument("--slow-seconds", type=float, default=5.0, help="its answer time; its push timeout is 1 s")
    parser.add_argument(
        "--rss-messages", type=int, default=0, help="then N more messages, worker RSS after each chunk (0: skip)"
    )
    parser.add_argument("--rss-chunk", type=int, default=5000, help="messages per RSS sample (5000)")
    parser.add_argument(
        "--rss-store",
        action="store_true",
        help="store and queue the --rss-messages with the gateway's own storage (stored.py), not through the "
        "HTTP intake: about three times faster, the worker's side unchanged",
    )
    parser.add_argument(
        "--rss-only", action="store_true", help="only the worker memory run (PostgreSQL + Redis), no other phase"
    )
    parser.add_argument(
        "--fairness-only",
        action="store_true",
        help="only the two fixed-rate phases (without and with the slow recipient) on PostgreSQL + Redis",
    )
    parser.add_argument(
        "--database-url",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="PostgreSQL; the run works in a fresh schema and drops it afterwards",
    )
    parser.add_argument("--phase-timeout", type=float, default=120.0, help="seconds a phase may take (120)")
    parser.add_argument("--results-dir", type=Path, default=ROOT / "bench" / "results")
    options = parser.parse_args(argv)
    if options.rss_only and options.fairness_only:
        parser.error("--rss-only and --fairness-only are two different runs: choose one")
    if options.rss_only and options.rss_messages <= 0:
        parser.error("--rss-only needs --rss-messages N")
    if shutil.which("redis-server") is None:
        parser.error("redis-server is not installed (apt-get install redis-server)")
    return options


@dataclass(frozen=True)
class Gateway:
    """A served gateway: where its database is, its environment, its ``gateway serve`` process."""

    database_url: str
    env: dict[str, str]
    serve: Process

    @property
    def port(self) -> int:
        return int(self.env["GATEWAY_PORT"])


def phase(
    run: Exchange,
    gateway: Gateway,
    label: str,
    envelopes: Sequence[tuple[str, bytes]],
    drain_prefetch: int | None,
    rate: float | None = None,
) -> dict[str, Any]:
    """Send the envelopes and wait until each one is delivered.

    End to end (``drain_prefetch`` None): a ``gateway worker`` (or the embedded one) is already
    running, so messages are delivered while they are being sent. Drain: the worker starts only once
    all are accepted and queued, with ``--prefetch drain_prefetch`` (0: dramatiq's default).
    """
    mode = "end-to-end" if drain_prefetch is None else "drain"
    print(f"{label}: sending {len(envelopes)} messages", flush=True)
    handled_before = run.recipient_count()
    watched = {
        "serve": gateway.serve,
        "recipient": run.recipient,
        **({"worker": run.workers[-1]} if run.workers else {}),
    }
    meter = Meter(watched)
    if rate is None:
        sent = send_all(gateway.port, envelopes, run.options.connections)
    else:  # open loop: enough connections that the offered rate does not wait for answers
        sent = send_at_rate(gateway.port, envelopes, rate, max(run.options.connections, 32))
    ids = sent.pop("accepted_ids")  # a refused message is counted by check(), not waited for
    if not ids:
        raise RuntimeError(f"the gateway accepted none of the messages; first refusal: {sent['first_failure']}")
    if drain_prefetch is not None:
        worker = run.worker(gateway.env, drain_prefetch)
        meter = Meter({**watched, "worker": worker})  # CPU from the worker's start
    wait_delivered(gateway.database_url, ids, run.options.phase_timeout)
    cpu = meter.read()
    if drain_prefetch is not None:
        run.stop(worker)
    result = figures(timings(gateway.database_url, ids), mode)
    handled = run.recipient_count() - handled_before
    gateway_cpu = cpu.get("serve_cpu_s", 0.0) + cpu.get("worker_cpu_s", 0.0)
    result.update(
        label=label,
        sent=sent,
        cpu=cpu,
        recipient_handled=handled,
        delivered_per_gateway_cpu_s=len(envelopes) / gateway_cpu if gateway_cpu else None,
        worker_rss_mb=processes.rss_mb(run.workers[-1].pid) if run.workers else None,
    )
    print(
        f"  {result['delivered_per_s']:,.0f} delivered/s ({mode}), intake {sent['accepted_per_s']:,.0f}/s, "
        f"p50/p99 {result['latency_ms_p50']:,.0f}/{result['latency_ms_p99']:,.0f} ms, "
        f"{sent['failures']} refused, recipient handled {handled}",
        flush=True,
    )
    if mode == "end-to-end":
        late = result["slowest_percent_accepted_s"]
        middle = late[len(late) // 2]
        print(f"  the slowest 1 % were accepted {late[0]:g} - {late[-1]:g} s into the phase (median {middle:g} s)")
    return result


def baseline(run: Exchange, prefetch: int) -> dict[str, Any]:
    """``drain.py`` on the run's Redis with the gateway worker's threads and ``prefetch``."""
    argv = [sys.executable, str(HERE / "drain.py"), "--redis-url", f"redis://{LOOPBACK}:{run.redis_port}/0"]
    argv += ["--messages", str(run.options.baseline_messages), "--threads", str(run.options.threads)]
    argv += ["--prefetch", str(prefetch), "--timeout", str(run.options.phase_timeout)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=run.options.phase_timeout + 60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"drain.py failed:\n{done.stdout}{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"baseline: raw dramatiq drain, prefetch {result['prefetch']}: {result['rate']:,.0f} messages/s", flush=True)
    return result


def rss_run(run: Exchange, database_url: str, env: dict[str, str], worker: Process, at_start: float) -> dict[str, Any]:
    """The worker's resident memory: at its start, after the phases, then after every ``--rss-chunk``
    of ``--rss-messages`` more messages (signed chunk by chunk, the next one signed while the worker
    delivers this one; accepted through the HTTP intake, or stored and queued with ``--rss-store``;
    each chunk delivered before the sample)."""
    options = run.options
    samples = [{"messages": 0, "rss_mb": at_start, "seconds": 0.0}]
    handled = run.recipient_count()
    samples.append({"messages": handled, "rss_mb": processes.rss_mb(worker.pid), "seconds": 0.0})
    stored = StoredIntake(env) if options.rss_store else None
    total, step = options.rss_messages, options.rss_chunk
    sizes = [min(step, total - n) for n in range(0, total, step)]
    started, missing = time.perf_counter(), 0
    try:
        with ThreadPoolExecutor(max_workers=1) as signer:  # signs in processes of its own
            upcoming = signer.submit(sign_envelopes, run.keys_dir, sizes[0]) if sizes else None
            for n, _ in enumerate(sizes):
                assert upcoming is not None
                chunk = upcoming.result()
                upcoming = signer.submit(sign_envelopes, run.keys_dir, sizes[n + 1]) if n + 1 < len(sizes) else None
                accepting = time.perf_counter()
                if stored is not None:
                    ids = stored.accept(chunk)
                else:
                    ids = send_all(int(env["GATEWAY_PORT"]), chunk, options.connections)["accepted_ids"]
                accepted_in = time.perf_counter() - accepting
                missing += len(chunk) - len(ids)
                wait_delivered(database_url, ids, options.phase_timeout)
                sample = {
                    "messages": run.recipient_count(),
                    "rss_mb": processes.rss_mb(worker.pid),
                    "seconds": time.perf_counter() - started,
                    "accepted_per_s": len(ids) / accepted_in,
                }
                samples.append(sample)
                print(
                    f"  worker RSS after {sample['messages']:,} messages: {sample['rss_mb']:.0f} MB "
                    f"({sample['seconds']:.0f} s; this chunk accepted at {sample['accepted_per_s']:,.0f}/s)",
                    flush=True,
                )
    finally:
        if stored is not None:
            stored.close()
    delivered = samples[-1]["messages"] - handled
    return {
        "intake": "stored.py (no HTTP intake)" if stored is not None else "HTTP",
        "samples": samples,
        "growth_mb_after_first_sample": samples[-1]["rss_mb"] - samples[1]["rss_mb"],
        "messages": options.rss_messages,
        "not_accepted": missing,
        "recipient_handled": delivered,
        "delivered_per_s": delivered / samples[-1]["seconds"] if samples[-1]["seconds"] else None,
    }


def memory_only(options: argparse.Namespace, run: Exchange) -> dict[str, Any]:
    """``--rss-only``: the recipient, Redis, PostgreSQL, a ``gateway worker`` (and ``gateway serve``
    unless ``--rss-store``), then only :func:`rss_run`."""
    endpoint = run.start_recipient()
    run.start_redis()
    with scratch_schema(options.database_url) as pg_url:
        env = run.env(pg_url, processes.free_port())
        gateway_cli(env, "init", "--demo")
        push_to(pg_url, endpoint)
        serve = None if options.rss_store else run.serve(env)
        worker = run.worker(env, options.prefetch)
        result = {"worker_rss": rss_run(run, pg_url, env, worker, processes.rss_mb(worker.pid))}
        run.stop(worker)
        if serve is not None:
            run.stop(serve)
    return result


# --- the run ------------------------------------------------------------------------------------


def fairness_phases(run: Exchange, production: Gateway, at_rate: list[Sequence[tuple[str, bytes]]]) -> dict[str, Any]:
    """The fixed-rate phase, then the same with a recipient timing out (a ``gateway worker`` runs)."""
    options, results = run.options, {}
    rate = options.offered_rate
    results["postgres_fixed_rate"] = phase(
        run, production, f"PostgreSQL + Redis, {rate:g}/s offered", at_rate[0], None, rate=rate
    )
    slow_endpoint = run.start_recipient(slow_seconds=options.slow_seconds)
    push_to(production.database_url, slow_endpoint, SLOW_RECIPIENT, timeout=1)
    slow_ids = originate_slow(production.env, options.slow_messages)
    print(f"{len(slow_ids)} deliveries queued to a recipient that answers after {options.slow_seconds:g} s")
    results["postgres_fixed_rate_slow_recipient"] = phase(
        run,
        production,
        f"PostgreSQL + Redis, {rate:g}/s offered, one recipient timing out",
        at_rate[1],
        None,
        rate=rate,
    )
    results["slow_recipient"] = slow_states(production.database_url)
    print(f"  the slow recipient's deliveries: {results['slow_recipient']}", flush=True)
    return results


WARM_UP = 600  # messages sent before the --fairness-only phases, not measured


def fairness_only(options: argparse.Namespace, run: Exchange) -> dict[str, Any]:
    """``--fairness-only``: the recipients, Redis, PostgreSQL, ``gateway serve`` and a ``gateway
    worker``; a warm-up, the two fixed-rate phases and nothing else (about a minute and a half)."""
    endpoint = run.start_recipient()
    run.start_redis()
    r = options.rate_messages
    with scratch_schema(options.database_url) as pg_url:
        env = run.env(pg_url, processes.free_port())
        gateway_cli(env, "init", "--demo")  # the participants' keys the envelopes are signed with too
        envelopes = sign_envelopes(run.keys_dir, 2 * r + WARM_UP)
        push_to(pg_url, endpoint)
        production = Gateway(pg_url, env, run.serve(env))
        worker = run.worker(env, options.prefetch)
        # warm: in the whole run these phases follow others, and a fresh gateway's first second is slower
        phase(run, production, "warm-up", envelopes[2 * r :], None, rate=options.offered_rate)
        results = fairness_phases(run, production, [envelopes[:r], envelopes[r : 2 * r]])
        run.stop(worker)
        run.stop(production.serve)
    return results


def benchmark(options: argparse.Namespace, run: Exchange) -> dict[str, Any]:
    m, tuned = options.messages, options.prefetch
    endpoint = run.start_recipient()
    embedded_env = run.env(None, processes.free_port())
    gateway_cli(embedded_env, "init", "--demo")
    sqlite_url = f"sqlite:///{run.workdir / 'embedded' / 'gateway.db'}"
    push_to(sqlite_url, endpoint)
    started = time.perf_counter()
    r = options.rate_messages
    envelopes = sign_envelopes(run.keys_dir, 4 * m + 2 * r)
    print(f"signed {len(envelopes)} envelopes in {time.perf_counter() - started:.1f} s", flush=True)
    batches = [envelopes[i * m : (i + 1) * m] for i in range(4)]
    at_rate = [envelopes[4 * m : 4 * m + r], envelopes[4 * m + r :]]
    results: dict[str, Any] = {}

    embedded = Gateway(sqlite_url, embedded_env, run.serve(embedded_env))
    results["embedded_end_to_end"] = phase(
        run, embedded, "embedded (SQLite, in-process broker and worker), end to end", batches[0], None
    )
    run.stop(embedded.serve)

    run.start_redis()
    with scratch_schema(options.database_url) as pg_url:
        env = run.env(pg_url, processes.free_port())
        gateway_cli(env, "init", "--demo")
        push_to(pg_url, endpoint)
        results["baseline_default_prefetch"] = baseline(run, 0)
        results["baseline_tuned_before"] = baseline(run, tuned)
        production = Gateway(pg_url, env, run.serve(env))
        results["postgres_drain_default_prefetch"] = phase(
            run, production, "PostgreSQL + Redis, full queue drained, default prefetch", batches[1], 0
        )
        results["postgres_drain_tuned_prefetch"] = phase(
            run, production, f"PostgreSQL + Redis, full queue drained, prefetch {tuned}", batches[2], tuned
        )
        worker = run.worker(env, tuned)
        rss_start = processes.rss_mb(worker.pid)
        results["postgres_end_to_end"] = phase(
            run, production, f"PostgreSQL + Redis, end to end, prefetch {tuned}", batches[3], None
        )
        results.update(fairness_phases(run, production, at_rate))
        results["worker_rss"] = rss_run(run, pg_url, env, worker, rss_start)
        run.stop(worker)
        run.stop(production.serve)
        results["baseline_tuned_after"] = baseline(run, tuned)
    return results


def ratios(results: dict[str, Any]) -> dict[str, float]:
    tuned = statistics.median([results["baseline_tuned_before"]["rate"], results["baseline_tuned_after"]["rate"]])
    default = results["baseline_default_prefetch"]["rate"]
    return {
        "baseline_tuned_rate": tuned,
        "embedded_end_to_end_vs_tuned_drain": results["embedded_end_to_end"]["delivered_per_s"] / tuned,
        "postgres_end_to_end_vs_tuned_drain": results["postgres_end_to_end"]["delivered_per_s"] / tuned,
        "postgres_drain_tuned_vs_tuned_drain": results["postgres_drain_tuned_prefetch"]["delivered_per_s"] / tuned,
        "postgres_drain_default_vs_default_drain": results["postgres_drain_default_prefetch"]["delivered_per_s"]
        / default,
        "fixed_rate_p99_slow_vs_without": fairness_ratio(results),
    }


def fairness_ratio(results: dict[str, Any]) -> float:
    """The healthy recipient's p99 with one recipient timing out / without (issue 13: at most 2)."""
    slow: float = results["postgres_fixed_rate_slow_recipient"]["latency_ms_p99"]
    return slow / results["postgres_fixed_rate"]["latency_ms_p99"]


def fairness_table(results: dict[str, Any]) -> str:
    """``--fairness-only``: the two fixed-rate phases and the ratio."""
    rows = [f"{'':<66} {'delivered/s':>11} {'p50/p99 ms':>13}"]
    for key in ("postgres_fixed_rate", "postgres_fixed_rate_slow_recipient"):
        r = results[key]
        latency = f"{r['latency_ms_p50']:,.0f}/{r['latency_ms_p99']:,.0f}"
        rows.append(f"{r['label']:<66} {r['delivered_per_s']:>11,.0f} {latency:>13}")
    rows.append(
        f"fairness: p99 with one recipient timing out / without: {fairness_ratio(results):.2f} "
        f"(the slow recipient's deliveries: {results['slow_recipient']})"
    )
    return "\n".join(rows)


def table(results: dict[str, Any], rates: dict[str, float], options: argparse.Namespace) -> str:
    """The figures as the README shows them: one line per gateway phase, then the baselines."""
    head = f"{'':<66} {'delivered/s':>11} {'p50/p99 ms':>13} {'/gw CPU-s':>9} {'vs drain':>8}"
    rows = [head]
    for key, against in (
        ("embedded_end_to_end", rates["baseline_tuned_rate"]),
        ("postgres_end_to_end", rates["baseline_tuned_rate"]),
        ("postgres_drain_default_prefetch", results["baseline_default_prefetch"]["rate"]),
        ("postgres_drain_tuned_prefetch", rates["baseline_tuned_rate"]),
        ("postgres_fixed_rate", rates["baseline_tuned_rate"]),
        ("postgres_fixed_rate_slow_recipient", rates["baseline_tuned_rate"]),
    ):
        r = results[key]
        latency = f"{r['latency_ms_p50']:,.0f}/{r['latency_ms_p99']:,.0f}" if r["mode"] == "end-to-end" else "-"
        per_cpu = r["delivered_per_gateway_cpu_s"]
        rows.append(
            f"{r['label']:<66} {r['delivered_per_s']:>11,.0f} {latency:>13} "
            f"{'-' if per_cpu is None else f'{per_cpu:,.0f}':>9} {r['delivered_per_s'] / against:>8.3f}"
        )
    for key, label in (
        ("baseline_default_prefetch", "baseline: raw dramatiq + Redis drain, default prefetch"),
        ("baseline_tuned_before", f"baseline: raw dramatiq + Redis drain, prefetch {options.prefetch} (before)"),
        ("baseline_tuned_after", f"baseline: raw dramatiq + Redis drain, prefetch {options.prefetch} (after)"),
    ):
        rows.append(f"{label:<66} {results[key]['rate']:>11,.0f}")
    rows.append(
        f"fairness: p99 with one recipient timing out / without: {rates['fixed_rate_p99_slow_vs_without']:.2f} "
        f"(the slow recipient's deliveries: {results['slow_recipient']})"
    )
    rows.append(memory_table(results))
    return "\n".join(rows)


def memory_table(results: dict[str, Any]) -> str:
    rss = results["worker_rss"]
    line = "worker RSS MB after messages: " + ", ".join(f"{s['messages']:,}: {s['rss_mb']:.0f}" for s in rss["samples"])
    if rss.get("delivered_per_s"):
        line += f" ({rss['intake']}; {rss['delivered_per_s']:,.0f} delivered/s over the memory run)"
    return line


def check(results: dict[str, Any], options: argparse.Namespace) -> list[str]:
    phases = [
        ("embedded_end_to_end", options.messages),
        ("postgres_drain_default_prefetch", options.messages),
        ("postgres_drain_tuned_prefetch", options.messages),
        ("postgres_end_to_end", options.messages),
    ]
    problems = fixed_rate_check(results, options, phases)
    for key in ("baseline_default_prefetch", "baseline_tuned_before", "baseline_tuned_after"):
        if not results[key]["complete"]:
            problems.append(f"{key}: the drain did not complete")
    return problems + memory_check(results)


def fixed_rate_check(
    results: dict[str, Any], options: argparse.Namespace, before: Sequence[tuple[str, int]] = ()
) -> list[str]:
    """Every message of the phases (``before``, then the two fixed-rate ones) stored and handled once."""
    problems = []
    for key, count in (
        *before,
        ("postgres_fixed_rate", options.rate_messages),
        ("postgres_fixed_rate_slow_recipient", options.rate_messages),
    ):
        r = results[key]
        if r["sent"]["failures"]:
            problems.append(f"{key}: {r['sent']['failures']} sends refused, first: {r['sent']['first_failure']}")
        if r["messages"] != count or r["recipient_handled"] != count:
            problems.append(f"{key}: {r['messages']} stored, {r['recipient_handled']} handled, {count} sent")
    return problems


def memory_check(results: dict[str, Any]) -> list[str]:
    rss = results["worker_rss"]
    if rss.get("not_accepted") or rss.get("recipient_handled", 0) != rss.get("messages", 0):
        return [
            f"worker_rss: {rss['messages']} messages, {rss['not_accepted']} not accepted, "
            f"{rss['recipient_handled']} handled"
        ]
    return []


def _terminate(signum: int, _frame: object) -> NoReturn:
    raise SystemExit(128 + signum)  # unwinds through every finally, which stops the processes


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    load = os.getloadavg()
    print(f"load average before the run: {' '.join(f'{x:.2f}' for x in load)} on {os.cpu_count()} CPUs", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="gateway-bench-delivery-"))
    run = Exchange(options, workdir)
    try:
        if options.rss_only:
            results = memory_only(options, run)
        elif options.fairness_only:
            results = fairness_only(options, run)
        else:
            results = benchmark(options, run)
    except KeyboardInterrupt:
        print("interrupted: everything started is stopped, nothing was written", file=sys.stderr)
        return 130
    finally:
        run.close()
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    if options.rss_only:
        rates: dict[str, float] = {}
        print(memory_table(results))
        problems = memory_check(results)
    elif options.fairness_only:
        rates = {"fixed_rate_p99_slow_vs_without": fairness_ratio(results)}
        print(fairness_table(results))
        problems = fixed_rate_check(results, options)
    else:
        rates = ratios(results)
        print(table(results, rates, options))
        problems = check(results, options)
    for problem in problems:
        print(f"PROBLEM: {problem}")
    document = {
        "benchmark": "delivery",
        "finished_at": datetime.now(UTC).isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_before": load,
            "load_average_after": os.getloadavg(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "options": {**vars(options), "results_dir": str(options.results_dir)},
        "ratios": rates,
        "results": results,
        "problems": problems,
    }
    options.results_dir.mkdir(parents=True, exist_ok=True)
    path = options.results_dir / f"delivery-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"result written to {path}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
