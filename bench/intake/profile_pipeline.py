"""Profile ``Pipeline.process`` in-process, one sending thread, on a throw-away demo gateway.

    .venv/bin/python bench/intake/profile_pipeline.py [--messages N] [--top N] [--postgres URL]

SQLite by default; with ``--postgres`` a fresh schema of that database, dropped afterwards.

Initialises a demo gateway in a temporary directory (``gateway init --demo``), signs ``N``
envelopes of the benchmark's traffic mix (``traffic.json``), runs them through the app's pipeline
once to warm up, then ``N`` more under cProfile, and prints the mean time per message (wall and the
process's CPU time), the stages' share (each stage timed on its own, wall and CPU; the database
stages run in the group commit's writer thread, and are profiled there too) and the top functions
by cumulative time. Nothing is served. On a machine shared with other work the CPU figures are the
ones to compare: waiting for a core inflates only the wall times.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

from database import scratch_database  # noqa: E402
from envelopes import SIGNATURE_TTL, generate, load_traffic  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--top", type=int, default=35)
    parser.add_argument("--postgres", metavar="URL", help="profile on a fresh schema of this PostgreSQL database")
    options = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="intake-profile-") as tmp,
        scratch_database(Path(tmp) / "data", options.postgres) as database_url,
    ):
        work = Path(tmp)
        os.environ.update(
            GATEWAY_DATA_DIR=str(work / "data"),
            GATEWAY_KEYS_DIR=str(work / "keys"),
            GATEWAY_DATABASE_URL=database_url,
            GATEWAY_TIMESTAMP_MAX_AGE=str(int(SIGNATURE_TTL.total_seconds())),
        )
        import subprocess

        subprocess.run(
            [str(ROOT / ".venv" / "bin" / "gateway"), "init", "--demo"], cwd=ROOT, check=True, capture_output=True
        )
        from gateway.clock import SystemClock
        from gateway.web.app import create_app

        app = create_app()
        pipeline = app.extensions["gateway"].pipeline
        routes = load_traffic(HERE / "traffic.json", ROOT / "examples")
        # sent one at a time, so a filing never overtakes its registration
        warm, measured = (segment.bodies for segment in generate(routes, [options.messages] * 2, work / "keys"))
        clock = SystemClock()
        for raw in warm:
            pipeline.process(raw, clock.now())
        # each stage on its own, without the profiler's overhead: wall time, and CPU time (which
        # other processes on a loaded machine inflate far less); the CPU checks run in this thread,
        # the database stages in the group commit's writer thread
        spent: dict[str, float] = defaultdict(float)
        spent_cpu: dict[str, float] = defaultdict(float)
        checks, stages = pipeline.checks, pipeline.stages
        pipeline.checks = tuple(_timed(stage, spent, spent_cpu) for stage in checks)
        pipeline.stages = tuple(_timed(stage, spent, spent_cpu) for stage in stages)
        count = options.messages // 2
        started, started_cpu = time.perf_counter(), time.process_time()
        for raw in measured[:count]:
            pipeline.process(raw, clock.now())
        per_message = (time.perf_counter() - started) / count * 1000
        per_message_cpu = (time.process_time() - started_cpu) / count * 1000
        pipeline.checks, pipeline.stages = checks, stages
        print(
            f"{per_message:.2f} ms a message through Pipeline.process, {per_message_cpu:.2f} ms CPU of the process "
            f"(stage sum {sum(spent.values()) / count * 1000:.2f} ms; the rest is the commits, the receipt "
            "and the hand-overs)"
        )
        print(f"  {'stage':<24} {'wall':>9} {'CPU':>9}")
        for name, seconds in spent.items():
            print(f"  {name:<24} {seconds / count * 1000:6.2f} ms {spent_cpu[name] / count * 1000:6.2f} ms")
        profile, in_writer = cProfile.Profile(), cProfile.Profile()
        pipeline.writer.run(lambda _session: in_writer.enable())  # cProfile profiles its own thread only
        profile.enable()
        for raw in measured[count:]:
            pipeline.process(raw, clock.now())
        profile.disable()
        pipeline.writer.run(lambda _session: in_writer.disable())
        stats = pstats.Stats(profile)
        stats.add(in_writer)
        stats.sort_stats("cumulative")
        stats.print_stats(options.top)
        stats.print_callees(r"verify\.py:\d+\(__call__\)")
        app.extensions["gateway"].engine.dispose()  # before the scratch schema is dropped
    return 0


def _timed(stage, spent, spent_cpu):  # type: ignore[no-untyped-def]
    from gateway.monitoring.instruments import TimedStage

    # the app wraps each stage in a TimedStage for its metrics: report the stage's own name
    name = stage.name if isinstance(stage, TimedStage) else getattr(stage, "__name__", None) or type(stage).__name__

    def run(inbound, session):  # type: ignore[no-untyped-def]
        started, started_cpu = time.perf_counter(), time.thread_time()
        try:
            stage(inbound, session)
        finally:
            spent[name] += time.perf_counter() - started
            spent_cpu[name] += time.thread_time() - started_cpu

    return run


if __name__ == "__main__":
    raise SystemExit(main())
