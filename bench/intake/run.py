"""bench/intake: the gateway's SOAP intake against three baselines, side by side on one serving stack.

One run: initialise a throw-away gateway (``gateway init --demo``), pre-generate the (signed)
envelopes, start four servers with the same workers and threads: the gateway (``gateway serve``),
parse + XSD (``baseline_app.py``, ``BENCH_BASELINE=xsd``), parse + XSD + signxml verification
(``BENCH_BASELINE=xsd+sig``) and parse + XSD + the gateway's own signature check, its
``VerifySignature`` (``BENCH_BASELINE=xsd+dsig``), under gunicorn with the gateway's own worker
class (``--servers`` drives fewer); drive them with the same envelopes, alternating, for several
rounds, closed-loop (fixed connections) or open-loop (``--rate``), sampling the gateway's locks
meanwhile. With ``--workers 1,2,4`` the whole run is repeated per worker count, each on a fresh
database. Prints medians, the ratios gateway/baseline, the lock shares and the scaling, and writes
``bench/results/intake-<time>.json``. Exits 1 when a server failed a request, 2 when the gateway's
stored rows differ from its acceptances. Every process it starts is stopped on the way out.

    .venv/bin/python bench/intake/run.py [--duration 15] [--rounds 3] [--workers 1[,2,4]]
        [--database-url postgresql://...] [--rate N] [--connections N | --connections-per-worker N] [--threads 16]
        [--servers gateway,xsd,xsd+sig,xsd+dsig]
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import load
import locks
import lxml.etree
import openloop
import report
import servers
import wrk_load
from database import backend_pids, named, scratch_database, stored_messages
from envelopes import LAG_CYCLES, SIGNATURE_TTL, Segment, generate, load_traffic, signing_available
from options import ROOT, Options, parse_options
from sqlalchemy.exc import SQLAlchemyError

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
SOAP_PATH = "/soap"
GATEWAY_APPLICATION = "bench-intake-gateway"  # application_name of the gateway's PostgreSQL sessions
TRAFFIC_ROUTES = len(json.loads((HERE / "traffic.json").read_text(encoding="utf-8"))["messages"])
WARMUP_LIMIT_S = 600.0  # the warm-up is sent whole; this only bounds a server that hangs
FOREIGN_LOAD_WARNING = 0.25  # cores busy with neither server nor load generator
EXIT_FAILURES, EXIT_STORED_MISMATCH = 1, 2


@dataclass(frozen=True)
class Setup:
    """One worker count's servers: where their files and database are."""

    workdir: Path
    keys_dir: Path
    data_dir: Path
    database_url: str
    workers: int


def gateway_env(setup: Setup, options: Options, port: int) -> dict[str, str]:
    """The environment of ``gateway init`` and ``gateway serve``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(
        GATEWAY_DATA_DIR=str(setup.data_dir),
        GATEWAY_KEYS_DIR=str(setup.keys_dir),
        GATEWAY_HOST=servers.LOOPBACK,
        GATEWAY_PORT=str(port),
        GATEWAY_WORKERS=str(setup.workers),
        GATEWAY_THREADS=str(options.threads),
        GATEWAY_DATABASE_URL=named(setup.database_url, GATEWAY_APPLICATION),
        # the envelopes are signed before the run: their Timestamps must stay acceptable throughout it
        GATEWAY_TIMESTAMP_MAX_AGE=str(int(SIGNATURE_TTL.total_seconds())),
        # every connection of the bench comes from one address; the serving layer limits connections
        # per client address (GATEWAY_MAX_CONNECTIONS_PER_CLIENT, 32 by default)
        GATEWAY_MAX_CONNECTIONS_PER_CLIENT=str(max(32, options.connections + 16)),
    )
    env.update({name: value for name, _, value in (s.partition("=") for s in options.settings)})  # never RUN_SETTINGS
    return env


def initialise(env: dict[str, str]) -> None:
    """``gateway init --demo``; raises ``RuntimeError`` with its output when it fails. It reuses the
    keys it finds, so every worker count's database registers the same certificates."""
    done = subprocess.run(
        [str(BIN / "gateway"), "init", "--demo"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"gateway init --demo failed:\n{done.stdout}{done.stderr}")


@contextmanager
def running(setup: Setup, options: Options, env: dict[str, str]) -> Iterator[dict[str, servers.Server]]:
    """The servers of ``--servers``, started and answering; stopped when the block ends, however it
    ends. The baselines are served by ``baseline_serve.py`` on the gateway's serving stack, with its
    settings (``xsd+dsig`` builds its trust store from them, as the gateway does)."""
    started: dict[str, servers.Server] = {}
    try:
        started["gateway"] = servers.start(
            "gateway",
            [str(BIN / "gateway"), "serve"],
            env,
            int(env["GATEWAY_PORT"]),
            setup.workdir / f"gateway-{setup.workers}.log",
        )
        for mode in options.servers[1:]:
            port = servers.free_port()
            baseline_env = {
                **env,
                "GATEWAY_PORT": str(port),
                "BENCH_BASELINE": mode,
                "BENCH_CERTS_DIR": str(setup.keys_dir / "participants"),
            }
            if options.baseline_worker_class:
                baseline_env["BENCH_WORKER_CLASS"] = options.baseline_worker_class
            started[mode] = servers.start(
                mode,
                [sys.executable, str(HERE / "baseline_serve.py")],
                baseline_env,
                port,
                setup.workdir / f"{mode}-{setup.workers}.log",
            )
        for server in started.values():
            servers.wait_ready(server, "/healthz")
        classes = {name: servers.worker_class(server) for name, server in started.items()}
        print(
            f"  servers ({setup.workers} worker(s) x {options.threads} threads): "
            + ", ".join(f"{name} on port {server.port} ({classes[name]})" for name, server in started.items()),
            flush=True,
        )
        if len(set(classes.values())) != 1:
            print(
                "  WARNING: the servers do not run the same gunicorn worker class: the ratios compare serving "
                "stacks too",
                flush=True,
            )
        yield started
    finally:
        for server in started.values():
            servers.stop(server)


def accepts(target: str) -> load.Acceptance:
    """What counts as success: HTTP 200 with a gateway answer that is not a SOAP Fault (an acceptance
    or a receipt, by version), or a baseline's 200."""
    if target == "gateway":
        return lambda status, body: status == 200 and b"Body>" in body and b":Fault>" not in body
    return lambda status, body: status == 200


def drive(server: servers.Server, segment: Segment, options: Options, warmup: bool = False) -> load.LoadResult:
    """One server driven with one segment of envelopes; only the gateway waits for what a message
    depends on (a filing for its registration's answer), the baselines keep no state."""
    bodies = segment.bodies
    after = segment.after if server.name == "gateway" else ()
    if options.open_loop and not warmup:
        assert options.rate is not None
        return openloop.drive_at_rate(
            servers.LOOPBACK,
            server.port,
            SOAP_PATH,
            bodies,
            options.connections,
            accepts(server.name),
            options.rate,
            options.duration,
            after,
        )
    if options.generator == "wrk":
        seconds = min(2.0, options.wrk_seconds) if warmup else options.wrk_seconds
        return wrk_load.drive(
            servers.LOOPBACK,
            server.port,
            SOAP_PATH,
            bodies,
            options.connections,
            seconds,
            once=server.name == "gateway",
        )
    # a baseline's closed-loop round lasts --duration like the gateway's: it has no replay check,
    # so it goes through its slice again when it is through
    return load.drive(
        servers.LOOPBACK,
        server.port,
        SOAP_PATH,
        bodies,
        min(options.connections, 16) if warmup else options.connections,
        accepts(server.name),
        WARMUP_LIMIT_S if warmup else options.duration,
        repeat=not warmup and server.name != "gateway",
        after=after,
    )


def warm_up(server: servers.Server, segment: Segment, options: Options) -> load.LoadResult:
    """The warm-up, whole (the rounds' first filings are about its graduates): the first cycle of
    the traffic mix one at a time (it registers the graduate whom the warm-up's first filings are
    about), then the rest over the connections."""
    first = load.drive(
        servers.LOOPBACK,
        server.port,
        SOAP_PATH,
        segment.bodies[:TRAFFIC_ROUTES],
        1,
        accepts(server.name),
        WARMUP_LIMIT_S,
    )
    rest = Segment(
        segment.bodies[TRAFFIC_ROUTES:],
        [
            None if before is None or before < TRAFFIC_ROUTES else before - TRAFFIC_ROUTES
            for before in segment.after[TRAFFIC_ROUTES:]
        ],
    )
    result = drive(server, rest, options, warmup=True)
    result.requests += first.requests
    result.failures += first.failures
    result.first_failure = first.first_failure or result.first_failure
    return result


def lock_sampler(setup: Setup, options: Options) -> locks.Sampler | None:
    if not options.lock_sampling:
        return None
    interval = options.lock_interval_ms / 1000
    if setup.database_url.startswith("postgresql://"):
        return locks.PostgresSampler(setup.database_url, GATEWAY_APPLICATION, interval)
    return locks.SqliteSampler(setup.data_dir / "gateway.db", interval)


def measure(
    started: dict[str, servers.Server],
    slices: list[Segment],
    options: Options,
    sampler: locks.Sampler | None,
    database_url: str,
) -> list[report.RoundFigures]:
    """Drive the servers with each slice in turn, the order reversed every other round so that drift
    cancels; the lock sampler runs during the gateway's turns, and the CPU of the gateway's
    PostgreSQL server processes is read around them."""
    figures = []
    for number, segment in enumerate(slices, start=1):
        order = options.servers if number % 2 else tuple(reversed(options.servers))
        for target in order:
            server = started[target]
            gateway = target == "gateway"
            backends = backend_pids(database_url, GATEWAY_APPLICATION) if gateway else set()
            database_before = servers.processes_cpu_seconds(backends)
            before, machine_before = servers.cpu_seconds(server.pid), servers.machine_busy_seconds()
            threads_before = servers.thread_cpu_seconds(server.pid) if gateway else None
            if sampler is not None and gateway:
                sampler.start()
            try:
                result = drive(server, segment, options)
            finally:
                if sampler is not None and gateway:
                    sampler.stop()
            after, machine_after = servers.cpu_seconds(server.pid), servers.machine_busy_seconds()
            threads = (threads_before, servers.thread_cpu_seconds(server.pid)) if threads_before is not None else None
            database_cpu = None
            if gateway and database_url.startswith("postgresql://"):
                backends |= backend_pids(database_url, GATEWAY_APPLICATION)
                database_after = servers.processes_cpu_seconds(backends)
                database_cpu = sum(used - database_before.get(pid, 0.0) for pid, used in database_after.items())
            figures.append(
                report.round_figures(
                    target,
                    number,
                    result,
                    (before, after),
                    machine_after - machine_before,
                    server.pid,
                    database_cpu,
                    threads,
                )
            )
            ended = ""
            count = len(segment.bodies)
            if options.open_loop and options.rate and count < options.rate * options.duration:
                ended = f" (only {count} envelopes a round: a schedule of {count / options.rate:.1f} s)"
            elif not options.open_loop and gateway and result.elapsed_s < options.duration * 0.95:
                ended = f" (envelopes used up after {result.elapsed_s:.1f} s: raise --envelopes)"
            print(
                f"  round {number} {target:<8} {result.requests:>6} requests, "
                f"{(result.requests - result.failures) / (result.elapsed_s or 1):>7,.0f} accepted/s, "
                f"{result.failures} failures{ended}",
                flush=True,
            )
    return figures


def segment_sizes(count: int, options: Options) -> list[int]:
    """The warm-up's size and one equal slice per round (every server gets the same slice)."""
    return [options.warmup] + [(count - options.warmup) // options.rounds] * options.rounds


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "lxml": ".".join(map(str, lxml.etree.LXML_VERSION)),
        "platform": platform.platform(),
    }


class Envelopes:
    """The run's envelopes in segments (the warm-up, then one per round), generated once (after the
    first ``gateway init`` made the keys) and reused by every worker count: each count's database
    is fresh, so every message id and every graduate is new to it."""

    def __init__(self, options: Options, keys_dir: Path) -> None:
        self.signed = options.signing == "on" or (options.signing == "auto" and signing_available())
        self._options = options
        self._keys_dir = keys_dir
        self.segments: list[Segment] = []

    def get(self) -> tuple[Segment, list[Segment]]:
        """The warm-up's segment and the rounds'."""
        if not self.segments:
            started_at = time.monotonic()
            routes = load_traffic(HERE / "traffic.json", ROOT / "examples")
            sizes = segment_sizes(self._options.envelope_count(self.signed), self._options)
            self.segments = generate(routes, sizes, self._keys_dir if self.signed else None)
            bodies = [body for segment in self.segments for body in segment.bodies]
            print(
                f"generated {len(bodies)} {'signed' if self.signed else 'unsigned'} envelopes "
                f"(mean {sum(map(len, bodies)) / len(bodies):,.0f} bytes) "
                f"in {time.monotonic() - started_at:.1f} s",
                flush=True,
            )
        return self.segments[0], self.segments[1:]

    def describe(self) -> dict[str, Any]:
        bodies = [body for segment in self.segments for body in segment.bodies]
        return {
            "count": len(bodies),
            "signed": self.signed,
            "mean_bytes": sum(map(len, bodies)) / max(1, len(bodies)),
            "lag_cycles": LAG_CYCLES,
        }


def benchmark(options: Options, setup: Setup, envelopes: Envelopes) -> dict[str, Any]:
    """One worker count against the database of ``setup``; returns its result document."""
    env = gateway_env(setup, options, servers.free_port())
    load_average = os.getloadavg()
    print(
        f"{setup.workers} worker(s): initialising a demo gateway ({setup.database_url.split('@')[-1]}); "
        f"load average {' '.join(f'{x:.2f}' for x in load_average)}",
        flush=True,
    )
    initialise(env)
    warmup, slices = envelopes.get()
    stored_before = stored_messages(setup.database_url)
    sampler = lock_sampler(setup, options)
    try:
        with running(setup, options, env) as started:
            warmed = {name: warm_up(server, warmup, options) for name, server in started.items()}
            for name, result in warmed.items():
                if result.failures:
                    print(
                        f"  warm-up: {name} refused {result.failures} of {result.requests}, "
                        f"e.g. {result.first_failure}",
                        flush=True,
                    )
            rounds = measure(started, slices, options, sampler, setup.database_url)
            memory = {name: servers.resident_mb(server.pid) for name, server in started.items()}
    finally:
        if isinstance(sampler, locks.PostgresSampler):
            sampler.close()
    accepted = sum(r.requests - r.failures for r in rounds if r.target == "gateway")
    # what the gateway refused during the warm-up stored nothing
    warm_accepted = warmed["gateway"].requests - warmed["gateway"].failures
    stored = stored_messages(setup.database_url) - stored_before - warm_accepted
    # wrk does not count the answers still in flight when its time is up (nor its warm-up's)
    slack = options.connections * (len(slices) + 1) if options.generator == "wrk" and not options.open_loop else 0
    return {
        "workers": setup.workers,
        "connections": options.connections,
        "database": setup.database_url.split("@")[-1].split("?")[0],
        "load_average_before": load_average,
        "envelopes": {
            "per_round": len(slices[0].bodies),
            "warmup": len(warmup.bodies),
            "warmup_refused": {name: r.failures for name, r in warmed.items()},
        },
        "gateway_stored_check": {
            "accepted_responses": accepted,
            "stored_rows": stored,
            "ok": accepted <= stored <= accepted + slack,
        },
        "summary": report.summarise(rounds),
        "rounds": report.as_json(rounds),
        "locks": sampler.figures.as_json() if sampler is not None else None,
        "resident_mb_after": {
            name: {str(pid): round(mb, 1) for pid, mb in sizes.items()} for name, sizes in memory.items()
        },
        "_lock_figures": sampler.figures if sampler is not None else None,
    }


def print_run(run: dict[str, Any], options: Options) -> bool:
    """The text report of one worker count; True when its stored-rows check passed."""
    rounds = [report.RoundFigures(**r) for r in run["rounds"]]
    print(
        f"\n=== {run['workers']} worker(s) x {options.threads} threads, {run['database']}, "
        + (
            f"open loop at {options.rate:,.0f}/s offered"
            if options.open_loop
            else f"closed loop, {options.connections} connections"
        )
        + f"; load average before: {run['load_average_before'][0]:.2f} ==="
    )
    print(report.table(run["summary"], rounds))
    if (with_database := run["summary"]["gateway"].get("per_cpu_with_database_s")) is not None:
        print(
            f"gateway accepted per CPU-second of its server and its PostgreSQL server processes together: "
            f"{with_database:,.0f} (median of rounds; the database's processes are not in the figures above)"
        )
    if options.open_loop:
        lag = max(r.max_send_lag_ms for r in rounds if r.target == "gateway")
        gateway = run["summary"]["gateway"]
        behind = (
            f"; every connection was busy, requests left the client up to {lag:.0f} ms late (that wait "
            "is in the latencies: the gateway did not keep up with the offered rate)"
            if lag > 100
            else ""
        )
        print(
            f"open loop: gateway accept latency from the scheduled time p50 {gateway['p50_ms']:.1f} ms, "
            f"p99 {gateway['p99_ms']:.1f} ms, max {gateway['max_ms']:.1f} ms (medians of rounds) at "
            f"{options.rate:,.0f}/s offered, {gateway['rate']:,.0f}/s accepted{behind}"
        )
    if run["_lock_figures"] is not None:
        print("\n".join(locks.describe(run["_lock_figures"], options.lock_limit)))
    if (split := report.thread_split(rounds)) is not None:
        print(f"gateway workers' CPU by thread (all rounds): {split}")
    check = run["gateway_stored_check"]
    memory = "; ".join(
        f"{name} {', '.join(f'{mb:,.0f}' for mb in sizes.values())}" for name, sizes in run["resident_mb_after"].items()
    )
    print(
        f"resident memory of the workers after the run, MB: {memory} "
        f"(the gateway's after {check['accepted_responses']:,} acceptances and the warm-up)"
    )
    print(
        f"gateway rows stored {check['stored_rows']} for {check['accepted_responses']} acceptances: "
        f"{'ok' if check['ok'] else 'MISMATCH'}"
    )
    if (foreign := report.foreign_load(rounds)) > FOREIGN_LOAD_WARNING:
        print(
            f"WARNING: other work on the machine used up to {foreign:.2f} cores during a round; "
            "the figures are disturbed (check uptime and run again; with PostgreSQL its server counts here)"
        )
    for failure in sorted({r.first_failure for r in rounds if r.first_failure}):
        print(f"first failure: {failure}")
    return bool(check["ok"])


def write_result(result: dict[str, Any], results_dir: Path) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"intake-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _terminate(signum: int, _frame: object) -> NoReturn:
    raise SystemExit(128 + signum)  # unwinds through every finally, which stops the servers


def run_all(options: Options, workdir: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every worker count in turn; their results and a description of the envelopes."""
    keys_dir = workdir / "keys"
    envelopes = Envelopes(options, keys_dir)
    runs = []
    for workers in options.workers:
        data_dir = workdir / f"data-{workers}"
        with scratch_database(data_dir, options.database_url) as url:
            setup = Setup(workdir, keys_dir, data_dir, url, workers)
            runs.append(benchmark(options.for_workers(workers), setup, envelopes))
    return runs, envelopes.describe()


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv, __doc__.split("\n\n")[0] if __doc__ else None)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background
    load_before = os.getloadavg()
    print(
        f"load average before the run: {' '.join(f'{x:.2f}' for x in load_before)} on {os.cpu_count()} CPUs", flush=True
    )
    workdir = Path(tempfile.mkdtemp(prefix="gateway-bench-intake-"))
    try:
        runs, described = run_all(options, workdir)
    except KeyboardInterrupt:
        print("interrupted: the servers are stopped, nothing was written", file=sys.stderr)
        return 130
    except (RuntimeError, OSError, SQLAlchemyError) as exc:
        print(f"bench/intake failed: {exc}", file=sys.stderr)
        return EXIT_FAILURES
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    stored_ok = all([print_run(run, options.for_workers(run["workers"])) for run in runs])
    scaling_lines, within = report.scaling({run["workers"]: run["summary"] for run in runs}, options.scaling_tolerance)
    print("\n=== per worker count (medians of rounds) ===")
    print("\n".join(scaling_lines))
    print(
        f"load average before / after the run: {' '.join(f'{x:.2f}' for x in load_before)} / "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    result = {
        "benchmark": "intake",
        "finished_at": datetime.now(UTC).isoformat(),
        "machine": machine(),
        "load_average_before": load_before,
        "options": {**vars(options), "results_dir": str(options.results_dir)},
        "envelopes": described,
        "scaling_within_tolerance": within,
        "runs": [{k: v for k, v in run.items() if not k.startswith("_")} for run in runs],
    }
    print(f"result written to {write_result(result, options.results_dir)}")
    if not stored_ok:
        return EXIT_STORED_MISMATCH
    failed = sum(run["summary"][target]["failures"] for run in runs for target in options.servers)
    return EXIT_FAILURES if failed else 0


if __name__ == "__main__":
    sys.exit(main())
