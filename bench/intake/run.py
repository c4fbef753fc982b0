"""bench/intake: the gateway's SOAP intake against a parse-and-validate baseline, side by side.

One run: initialise a throw-away gateway (``gateway init --demo``), pre-generate the envelopes,
start the gateway (``gateway serve``) and the baseline (``baseline_app.py``) under gunicorn with
the same workers and threads, then drive both with the same connections and the same envelopes,
alternating, for several rounds. Prints medians and the gateway/baseline ratio and writes
``bench/results/intake-<timestamp>.json``. Every process it starts is stopped on the way out.

    .venv/bin/python bench/intake/run.py [--envelopes N] [--rounds 3] [--connections 16]
        [--workers 1] [--threads 8] [--database-url postgresql://...] [--load python|wrk]
        [--signing auto|on|off]
"""

from __future__ import annotations

import argparse
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
import lxml.etree
import report
import servers
import wrk_load
from database import scratch_database, stored_messages
from envelopes import SIGNATURE_TTL, generate, load_traffic, signing_available

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
BIN = Path(sys.executable).parent
SOAP_PATH = "/soap"
UNSIGNED_ENVELOPES = 20_000
SIGNED_ENVELOPES = 10_000
FOREIGN_LOAD_WARNING = 0.25  # cores busy with neither server nor load generator


@dataclass(frozen=True)
class Options:
    envelopes: int | None
    rounds: int
    warmup: int
    connections: int
    workers: int
    threads: int
    database_url: str | None
    generator: str
    signing: str
    max_seconds: float
    wrk_seconds: float
    results_dir: Path


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--envelopes", type=int, default=None,
                        help="envelopes generated, warm-up included; each round gets an equal share "
                             "(20000; 10000 when signed, as signing costs about 1 ms each)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per server, alternating (3)")
    parser.add_argument("--warmup", type=int, default=200, help="requests per server before measuring (200)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent keep-alive connections (16)")
    parser.add_argument("--workers", type=int, default=1,
                        help="gunicorn worker processes; more than 1 needs --database-url (1)")
    parser.add_argument("--threads", type=int, default=8, help="gthread threads per worker (8)")
    parser.add_argument("--database-url", default=None,
                        help="e.g. postgresql://postgres@127.0.0.1:5432/test (default: SQLite in a temp dir)")
    parser.add_argument("--load", dest="generator", choices=("python", "wrk"), default="python",
                        help="load generator: the built-in Python one, or wrk if installed (python)")
    parser.add_argument("--signing", choices=("auto", "on", "off"), default="auto",
                        help="sign the envelopes (WS-Security, senders' demo keys); auto: when the gateway "
                             "has gateway.sdk.signing (auto)")
    parser.add_argument("--max-seconds", type=float, default=15.0,
                        help="time limit of one server's round with the Python generator (15)")
    parser.add_argument("--wrk-seconds", type=float, default=5.0,
                        help="duration of one server's round with --load wrk (5)")
    parser.add_argument("--results-dir", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    options = Options(**vars(args))
    _check(parser, options)
    return options


def _check(parser: argparse.ArgumentParser, options: Options) -> None:
    if options.workers > 1 and options.database_url is None:
        parser.error("the embedded default (SQLite) runs one worker process; --workers 2 needs --database-url")
    if options.generator == "wrk" and not wrk_load.available():
        parser.error("--load wrk: wrk is not installed (the default Python generator needs nothing)")
    if options.envelopes is not None and options.envelopes - options.warmup < options.rounds * options.connections:
        parser.error("--envelopes leaves too few envelopes per round")
    if options.signing == "on" and not signing_available():
        parser.error("--signing on: this gateway has no gateway.sdk.signing")
    if options.database_url and not options.database_url.startswith("postgresql://"):
        parser.error("--database-url must be a postgresql:// URL (SQLite is the default)")


def gateway_env(workdir: Path, options: Options, url: str, port: int) -> dict[str, str]:
    """The environment of ``gateway init`` and ``gateway serve``: files under ``workdir``, database ``url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(
        GATEWAY_DATA_DIR=str(workdir / "data"), GATEWAY_KEYS_DIR=str(workdir / "keys"),
        GATEWAY_HOST=servers.LOOPBACK, GATEWAY_PORT=str(port),
        GATEWAY_WORKERS=str(options.workers), GATEWAY_THREADS=str(options.threads), GATEWAY_DATABASE_URL=url,
        # the envelopes are signed before the run: their Timestamps must stay acceptable throughout it
        GATEWAY_TIMESTAMP_MAX_AGE=str(int(SIGNATURE_TTL.total_seconds())),
    )
    return env


def initialise(env: dict[str, str]) -> None:
    """``gateway init --demo``; raises ``RuntimeError`` with its output when it fails."""
    done = subprocess.run([str(BIN / "gateway"), "init", "--demo"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"gateway init --demo failed:\n{done.stdout}{done.stderr}")


@contextmanager
def running(workdir: Path, options: Options, env: dict[str, str]) -> Iterator[dict[str, servers.Server]]:
    """Both servers, started and answering; stopped when the block ends, however it ends."""
    started: dict[str, servers.Server] = {}
    try:
        started["gateway"] = servers.start(
            "gateway", [str(BIN / "gateway"), "serve"], env, int(env["GATEWAY_PORT"]), workdir / "gateway.log")
        port = servers.free_port()
        started["baseline"] = servers.start("baseline", [
            sys.executable, "-m", "gunicorn", "--bind", f"{servers.LOOPBACK}:{port}",
            "--workers", str(options.workers), "--worker-class", "gthread", "--threads", str(options.threads),
            "--timeout", "60", "--access-logfile", "-", "--pythonpath", str(HERE), "baseline_app:create_app()",
        ], env, port, workdir / "baseline.log")
        for server in started.values():
            servers.wait_ready(server, "/healthz")
        yield started
    finally:
        for server in started.values():
            servers.stop(server)


def accepts(target: str) -> load.Acceptance:
    """What counts as success: HTTP 200 with a gateway answer that is not a SOAP Fault (an acceptance
    or a receipt, by version), or the baseline's 200."""
    if target == "gateway":
        return lambda status, body: status == 200 and b"Body>" in body and b":Fault>" not in body
    return lambda status, body: status == 200


def drive(server: servers.Server, bodies: Sequence[bytes], options: Options, warmup: bool = False,
          ) -> load.LoadResult:
    if options.generator == "wrk":
        seconds = min(2.0, options.wrk_seconds) if warmup else options.wrk_seconds
        return wrk_load.drive(servers.LOOPBACK, server.port, SOAP_PATH, bodies, options.connections,
                              seconds, once=server.name == "gateway")
    return load.drive(servers.LOOPBACK, server.port, SOAP_PATH, bodies, options.connections,
                      accepts(server.name), options.max_seconds)


def measure(started: dict[str, servers.Server], slices: list[list[bytes]], options: Options,
            ) -> list[report.RoundFigures]:
    """Drive both servers with each slice in turn, the order alternating so that drift cancels."""
    figures = []
    for number, bodies in enumerate(slices, start=1):
        order = ("gateway", "baseline") if number % 2 else ("baseline", "gateway")
        for target in order:
            server = started[target]
            before, machine_before = servers.cpu_seconds(server.pid), servers.machine_busy_seconds()
            result = drive(server, bodies, options)
            after, machine_after = servers.cpu_seconds(server.pid), servers.machine_busy_seconds()
            figures.append(report.round_figures(
                target, number, result, (before, after), machine_after - machine_before, server.pid))
            print(f"  round {number} {target:<8} {result.requests:>6} requests, {result.rate:>7,.0f}/s, "
                  f"{result.failures} failures", flush=True)
    return figures


def slices_of(envelopes: list[bytes], options: Options) -> tuple[list[bytes], list[list[bytes]]]:
    """The warm-up envelopes and one equal slice per round."""
    warmup, rest = envelopes[:options.warmup], envelopes[options.warmup:]
    size = len(rest) // options.rounds
    return warmup, [rest[i * size:(i + 1) * size] for i in range(options.rounds)]


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(), "load_average": os.getloadavg(), "python": platform.python_version(),
        "lxml": ".".join(map(str, lxml.etree.LXML_VERSION)), "platform": platform.platform(),
    }


def benchmark(options: Options, workdir: Path, url: str) -> dict[str, Any]:
    """The whole run against the database at ``url``; returns the result document."""
    env = gateway_env(workdir, options, url, servers.free_port())
    print(f"initialising a demo gateway in {workdir} ({url.split('@')[-1]})", flush=True)
    initialise(env)
    started_at = time.monotonic()
    signed = options.signing == "on" or (options.signing == "auto" and signing_available())
    routes = load_traffic(HERE / "traffic.json", ROOT / "examples")
    count = options.envelopes or (SIGNED_ENVELOPES if signed else UNSIGNED_ENVELOPES)
    envelopes = generate(routes, count, workdir / "keys" if signed else None)
    print(f"generated {len(envelopes)} {'signed' if signed else 'unsigned'} envelopes "
          f"(mean {sum(map(len, envelopes)) / len(envelopes):,.0f} bytes) "
          f"in {time.monotonic() - started_at:.1f} s", flush=True)
    warmup, slices = slices_of(envelopes, options)
    stored_before = stored_messages(url)
    with running(workdir, options, env) as started:
        print(f"gateway on port {started['gateway'].port}, baseline on port {started['baseline'].port}; "
              f"{options.workers} worker(s) x {options.threads} threads, {options.connections} connections, "
              f"load generator: {options.generator}", flush=True)
        warmed = {name: drive(server, warmup, options, warmup=True) for name, server in started.items()}
        if warmed["gateway"].failures:
            print(f"  warm-up: the gateway refused {warmed['gateway'].failures} of {warmed['gateway'].requests}, "
                  f"e.g. {warmed['gateway'].first_failure}", flush=True)
        rounds = measure(started, slices, options)
    accepted = sum(r.requests - r.failures for r in rounds if r.target == "gateway")
    # what the gateway refused during the warm-up stored nothing
    warm_accepted = warmed["gateway"].requests - warmed["gateway"].failures
    stored = stored_messages(url) - stored_before - warm_accepted
    # wrk does not count the answers still in flight when its time is up (nor its warm-up's)
    slack = options.connections * (len(slices) + 1) if options.generator == "wrk" else 0
    summary = report.summarise(rounds)
    return {
        "benchmark": "intake", "finished_at": datetime.now(UTC).isoformat(), "machine": machine(),
        "options": {**vars(options), "results_dir": str(options.results_dir)},
        "envelopes": {"count": len(envelopes), "mean_bytes": sum(map(len, envelopes)) / len(envelopes),
                      "per_round": len(slices[0]), "warmup": len(warmup), "signed": signed,
                      "warmup_refused_by_gateway": warmed["gateway"].failures},
        "gateway_stored_check": {
            "accepted_responses": accepted, "stored_rows": stored, "ok": accepted <= stored <= accepted + slack,
        },
        "summary": summary, "rounds": report.as_json(rounds),
    }


def write_result(result: dict[str, Any], results_dir: Path) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"intake-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _terminate(signum: int, _frame: object) -> NoReturn:
    raise SystemExit(128 + signum)  # unwinds through every finally, which stops the servers


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background
    print(f"load average before the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"on {os.cpu_count()} CPUs", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="gateway-bench-intake-"))
    try:
        with scratch_database(workdir, options.database_url) as url:
            result = benchmark(options, workdir, url)
    except KeyboardInterrupt:
        print("interrupted: the servers are stopped, nothing was written", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    rounds = [report.RoundFigures(**r) for r in result["rounds"]]
    print()
    print(report.table(result["summary"], rounds))
    check = result["gateway_stored_check"]
    print(f"\ngateway rows stored {check['stored_rows']} for {check['accepted_responses']} acceptances: "
          f"{'ok' if check['ok'] else 'MISMATCH'}")
    if (foreign := report.foreign_load(rounds)) > FOREIGN_LOAD_WARNING:
        print(f"WARNING: other work on the machine used up to {foreign:.2f} cores during a round; "
              "the figures are disturbed (check uptime and run again)")
    for failure in sorted({r.first_failure for r in rounds if r.first_failure}):
        print(f"first failure: {failure}")
    print(f"result written to {write_result(result, options.results_dir)}")
    failed = result["summary"]["gateway"]["failures"] + result["summary"]["baseline"]["failures"]
    return 1 if failed or not check["ok"] else 0


if __name__ == "__main__":
    sys.exit(main())
