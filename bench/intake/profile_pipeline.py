"""Profile ``Pipeline.process`` in-process, on a throw-away demo gateway.

    .venv/bin/python bench/intake/profile_pipeline.py [--messages N] [--top N] [--postgres URL] [--senders N]

SQLite by default; with ``--postgres`` a fresh schema of that database, dropped afterwards.

Initialises a demo gateway in a temporary directory (``gateway init --demo``), signs ``N``
envelopes of the benchmark's traffic mix (``traffic.json``), runs them through the app's pipeline
once to warm up, then ``N`` more under cProfile, and prints the mean time per message (wall and the
process's CPU time), the stages' share (each stage timed on its own, wall and CPU; the database
stages run in the group commit's writer thread, and are profiled there too) and the top functions
by cumulative time. Nothing is served. On a machine shared with other work the CPU figures are the
ones to compare: waiting for a core inflates only the wall times.

``--senders N`` (default 1) sends the measured half from N threads at once, as a served worker's
request threads do (a filing still waits for its registration's answer), so that the group commit
gathers batches: the figures then include the batches (how many, how many pieces each: a message's
database stages and its receipt's row are a piece each) and the CPU time of the writer's thread
beside the process's, which a sampling profiler of the served worker under-reports (it counts the
request threads waiting for a core or for the interpreter lock as busy). For the served worker's
conditions run it on one CPU: ``taskset -c 1 .venv/bin/python bench/intake/profile_pipeline.py
--senders 8 --messages 6000``. The cProfile part is skipped with more than one sender (cProfile
profiles the thread that enables it, and slows every thread unevenly).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

from database import init_demo_home, scratch_database  # noqa: E402
from envelopes import SIGNATURE_TTL, generate, load_traffic  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--top", type=int, default=35)
    parser.add_argument("--postgres", metavar="URL", help="profile on a fresh schema of this PostgreSQL database")
    parser.add_argument("--senders", type=int, default=1, help="threads sending the measured messages at once")
    options = parser.parse_args(argv)
    if options.senders < 1:
        parser.error("--senders must be at least 1")
    with (
        tempfile.TemporaryDirectory(prefix="intake-profile-") as tmp,
        scratch_database(Path(tmp) / "data", options.postgres) as database_url,
    ):
        work = Path(tmp)
        init_demo_home(work, database_url, int(SIGNATURE_TTL.total_seconds()))
        from gateway.clock import SystemClock
        from gateway.web.app import create_app

        app = create_app()
        pipeline = app.extensions["gateway"].pipeline
        routes = load_traffic(HERE / "traffic.json", ROOT / "examples")
        # sent one at a time, so a filing never overtakes its registration
        warm_segment, measured_segment = generate(routes, [options.messages] * 2, work / "keys")
        warm, measured = warm_segment.bodies, measured_segment.bodies
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
        count = options.messages // 2 if options.senders == 1 else options.messages
        writer = pipeline.writer
        pieces = _count_pieces(writer)
        writer_cpu = _thread_time_of(writer)  # a batch of its own, before the count starts
        batches = writer.batches
        started, started_cpu = time.perf_counter(), time.process_time()
        _send(pipeline, clock, measured[:count], measured_segment.after[:count], options.senders)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - started_cpu
        writer_cpu = _thread_time_of(writer) - writer_cpu
        batches = writer.batches - batches - 1  # less the one that read the writer's time
        per_message, per_message_cpu = elapsed / count * 1000, cpu / count * 1000
        pipeline.checks, pipeline.stages = checks, stages
        del writer.run  # type: ignore[method-assign]  # _count_pieces's
        print(
            f"{count} messages from {options.senders} sender(s): {count / elapsed:.0f} a second; "
            f"{batches} batches of {pieces[0] / max(batches, 1):.1f} pieces on average; the writer's thread "
            f"{writer_cpu / count * 1000:.2f} ms CPU a message ({writer_cpu / cpu:.0%} of the process's)"
        )
        print(
            f"{per_message:.2f} ms a message through Pipeline.process, {per_message_cpu:.2f} ms CPU of the process "
            f"(the stages' CPU {sum(spent_cpu.values()) / count * 1000:.2f} ms; the rest is the commits, the "
            "receipt and the hand-overs)"
        )
        # with several senders a stage's wall time includes its waits for the interpreter lock
        print(f"  {'stage':<24} {'wall':>9} {'CPU':>9}")
        for name, seconds in spent.items():
            print(f"  {name:<24} {seconds / count * 1000:6.2f} ms {spent_cpu[name] / count * 1000:6.2f} ms")
        if options.senders > 1:
            app.extensions["gateway"].engine.dispose()
            return 0
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


def _send(pipeline, clock, bodies, after, senders):  # type: ignore[no-untyped-def]
    """``bodies`` through ``pipeline.process`` from ``senders`` threads; body ``i`` waits until body
    ``after[i]`` (its registration) is answered. A refusal is counted and reported."""
    from gateway.errors import Fault

    answered = {index: threading.Event() for index in set(after) if index is not None}
    taken = iter(range(len(bodies)))
    lock = threading.Lock()
    refused: list[str] = []

    def sender() -> None:
        while True:
            with lock:
                index = next(taken, None)
            if index is None:
                return
            if (before := after[index]) is not None:
                answered[before].wait(60)
            try:
                pipeline.process(bodies[index], clock.now())
            except Fault as fault:
                refused.append(fault.code)
            if index in answered:
                answered[index].set()

    threads = [threading.Thread(target=sender) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if refused:
        print(f"  {len(refused)} refused: {', '.join(sorted(set(refused)))}")


def _count_pieces(writer):  # type: ignore[no-untyped-def]
    """Count the pieces handed to ``writer`` from now on (until ``del writer.run``); a list of one count."""
    counted = [0]
    run = writer.run

    def counting(work, **options):  # type: ignore[no-untyped-def]
        counted[0] += 1
        run(work, **options)

    writer.run = counting
    return counted


def _thread_time_of(writer):  # type: ignore[no-untyped-def]
    """The CPU time the writer's thread has used so far (read in its own thread, in a batch of its own)."""
    read: list[float] = []
    type(writer).run(writer, lambda _session: read.append(time.thread_time()))
    return read[0]


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
