"""The command line of bench/intake (``run.py --help``)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import wrk_load
from envelopes import signing_available
from report import TARGETS

from gateway.settings import DEFAULT_THREADS

ROOT = Path(__file__).resolve().parent.parent.parent
RUN_SETTINGS = {  # gateway settings the run chooses, and the option that changes them
    "GATEWAY_DATA_DIR": "a temporary directory",
    "GATEWAY_KEYS_DIR": "a temporary directory",
    "GATEWAY_HOST": "127.0.0.1",
    "GATEWAY_PORT": "a free port",
    "GATEWAY_WORKERS": "--workers",
    "GATEWAY_THREADS": "--threads",
    "GATEWAY_DATABASE_URL": "--database-url",
}
CLOSED_LOOP_CONNECTIONS = 16
OPEN_LOOP_CONNECTIONS = 64
# envelopes per second of round that the default --envelopes provides (signed; unsigned): a round
# ends early, reported, when a faster gateway uses its slice up
SIGNED_PER_SECOND = 700
UNSIGNED_PER_SECOND = 1500


@dataclass(frozen=True)
class Options:
    envelopes: int | None
    rounds: int
    warmup: int
    connections: int
    connections_per_worker: int | None  # closed loop: connections = this x workers, for each worker count
    workers: tuple[int, ...]
    threads: int
    database_url: str | None
    generator: str
    signing: str
    duration: float
    wrk_seconds: float
    rate: float | None
    lock_sampling: bool
    lock_interval_ms: float
    lock_limit: float
    scaling_tolerance: float
    baseline_worker_class: str | None
    servers: tuple[str, ...]  # the targets driven, in the order of report.TARGETS; the gateway always
    settings: tuple[str, ...]
    results_dir: Path

    @property
    def open_loop(self) -> bool:
        return self.rate is not None

    def for_workers(self, workers: int) -> Options:
        """These options for one worker count: with ``--connections-per-worker``, its connections."""
        if self.connections_per_worker is None:
            return self
        return replace(self, connections=self.connections_per_worker * workers)

    def envelope_count(self, signed: bool) -> int:
        """How many envelopes to generate: ``--envelopes``, or enough for every round's duration."""
        if self.envelopes is not None:
            return self.envelopes
        per_second = self.rate or (SIGNED_PER_SECOND if signed else UNSIGNED_PER_SECOND)
        return self.warmup + self.rounds * max(self.connections * 4, math.ceil(per_second * self.duration))


def _worker_counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        message = f"--workers takes counts separated by commas, e.g. 1,2,4 (not {text!r})"
        raise argparse.ArgumentTypeError(message) from None
    if not counts or min(counts) < 1 or len(set(counts)) != len(counts):
        raise argparse.ArgumentTypeError("--workers: distinct counts of at least 1, e.g. 1,2,4")
    return counts


def _servers(text: str) -> tuple[str, ...]:
    """The targets named (the gateway is always driven), in the order of ``report.TARGETS``."""
    named = {part.strip() for part in text.split(",") if part.strip()}
    if unknown := named - set(TARGETS):
        raise argparse.ArgumentTypeError(f"unknown {', '.join(sorted(unknown))}; choose among {','.join(TARGETS)}")
    return tuple(target for target in TARGETS if target in named | {"gateway"})


def parse_options(argv: Sequence[str] | None = None, description: str | None = None) -> Options:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--envelopes",
        type=int,
        default=None,
        help="envelopes generated, warm-up included; each round gets an equal share (default: "
        f"enough for --duration at {SIGNED_PER_SECOND}/s signed, {UNSIGNED_PER_SECOND}/s "
        "unsigned, or at --rate)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds per server, alternating order (3)")
    parser.add_argument("--warmup", type=int, default=200, help="requests per server before measuring (200)")
    parser.add_argument(
        "--connections",
        type=int,
        default=None,
        help=f"concurrent keep-alive connections ({CLOSED_LOOP_CONNECTIONS}; {OPEN_LOOP_CONNECTIONS} with --rate)",
    )
    parser.add_argument(
        "--connections-per-worker",
        type=int,
        default=None,
        metavar="N",
        help="closed loop: N connections for each worker process (N x workers at each worker count), so "
        "that every worker has as many messages in flight at every count; instead of --connections",
    )
    parser.add_argument(
        "--workers",
        type=_worker_counts,
        default=(1,),
        help="gunicorn worker processes of every server; several counts (1,2,4) run one after "
        "the other, each on a fresh database (1)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=DEFAULT_THREADS,
        help=f"threads per worker (GATEWAY_THREADS), the gateway's default ({DEFAULT_THREADS})",
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="e.g. postgresql://postgres@127.0.0.1:5432/test; each worker count runs in a fresh "
        "schema of it (default: SQLite in a temp dir)",
    )
    parser.add_argument(
        "--load",
        dest="generator",
        choices=("python", "wrk"),
        default="python",
        help="closed-loop load generator: the built-in Python one, or wrk if installed (python)",
    )
    parser.add_argument(
        "--signing",
        choices=("auto", "on", "off"),
        default="auto",
        help="sign the envelopes (WS-Security, senders' demo keys); auto: when the gateway "
        "has gateway.sdk.signing; off is refused: the signxml baseline needs signatures (auto)",
    )
    parser.add_argument(
        "--duration",
        "--max-seconds",
        dest="duration",
        type=float,
        default=15.0,
        help="seconds of one server's round: the time limit closed-loop, the length open-loop (15)",
    )
    parser.add_argument(
        "--wrk-seconds", type=float, default=5.0, help="duration of one server's round with --load wrk (5)"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="open loop: offer this many requests a second to each server (default: closed loop)",
    )
    parser.add_argument(
        "--lock-sampling", choices=("on", "off"), default="on", help="sample the gateway's locks during its rounds (on)"
    )
    parser.add_argument("--lock-interval-ms", type=float, default=10.0, help="time between lock samples (10)")
    parser.add_argument(
        "--lock-limit",
        type=float,
        default=0.20,
        help="share of wall time above which a held resource is flagged (0.20)",
    )
    parser.add_argument(
        "--scaling-tolerance",
        type=float,
        default=0.15,
        help="largest change of accepted per server CPU-second across --workers counts (0.15)",
    )
    parser.add_argument(
        "--baseline-worker-class",
        default=None,
        help="gunicorn worker class of the baselines (default: the one `gateway serve` logs)",
    )
    parser.add_argument(
        "--servers",
        type=_servers,
        default=TARGETS,
        help="the servers to drive, separated by commas, among " + ",".join(TARGETS) + "; the "
        "gateway is always driven, and a baseline left out has no column or ratio (all: " + ",".join(TARGETS) + ")",
    )
    parser.add_argument(
        "--setting",
        dest="settings",
        action="append",
        default=[],
        metavar="GATEWAY_NAME=VALUE",
        help="a gateway setting for `gateway init` and `gateway serve` (repeatable); the run's "
        "environment's GATEWAY_* variables are not passed on, these are",
    )
    parser.add_argument("--results-dir", type=Path, default=ROOT / "bench" / "results")
    args = vars(parser.parse_args(argv))
    if args["connections_per_worker"] is not None:
        if args["connections"] is not None or args["rate"] is not None:
            parser.error("--connections-per-worker is for the closed loop, instead of --connections")
        if args["connections_per_worker"] < 1:
            parser.error("--connections-per-worker must be at least 1")
        args["connections"] = args["connections_per_worker"] * max(args["workers"])  # the most any count uses
    if args["connections"] is None:
        args["connections"] = OPEN_LOOP_CONNECTIONS if args["rate"] is not None else CLOSED_LOOP_CONNECTIONS
    args["lock_sampling"] = args["lock_sampling"] == "on"
    args["settings"] = tuple(args["settings"])
    options = Options(**args)
    _check(parser, options)
    return options


def _check(parser: argparse.ArgumentParser, options: Options) -> None:
    if options.generator == "wrk" and not wrk_load.available():
        parser.error("--load wrk: wrk is not installed (the default Python generator needs nothing)")
    if options.generator == "wrk" and options.open_loop:
        parser.error("--rate uses its own open-loop generator; leave out --load wrk")
    if options.rate is not None and options.rate <= 0:
        parser.error("--rate must be positive")
    if options.warmup < 10:
        parser.error("--warmup must be at least 10: its first messages register the graduate of the first filings")
    if options.duration <= 0 or options.rounds < 1:
        parser.error("--duration must be positive and --rounds at least 1")
    if options.envelopes is not None and options.envelopes - options.warmup < options.rounds * options.connections:
        parser.error("--envelopes leaves too few envelopes per round")
    for setting in options.settings:
        name, equals, _ = setting.partition("=")
        if not name.startswith("GATEWAY_") or not equals:
            parser.error(f"--setting takes GATEWAY_NAME=VALUE, not {setting!r}")
        if name in RUN_SETTINGS:
            parser.error(f"--setting {name}: the run sets it itself ({RUN_SETTINGS[name]})")
    if options.signing == "off":
        parser.error(
            "--signing off: the signature baselines verify the envelopes' signatures, and the gateway requires them"
        )
    if options.signing == "on" and not signing_available():
        parser.error("--signing on: this gateway has no gateway.sdk.signing")
    if options.database_url and not options.database_url.startswith("postgresql://"):
        parser.error("--database-url must be a postgresql:// URL (SQLite is the default)")
