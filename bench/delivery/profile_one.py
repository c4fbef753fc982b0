"""bench/delivery/profile_one.py: the CPU one push delivery costs the gateway, measured in one thread.

A short run (seconds): a throw-away gateway home on a fresh PostgreSQL schema (or SQLite with
``--sqlite``), the benchmark's push recipient under gunicorn in a process of its own (so its
signature verification is not counted), ``--messages`` destination registrations accepted through
the app in this process, then ``DeliveryService.deliver`` called for each delivery in turn in this
thread. Prints the gateway's CPU per delivery (``time.thread_time``: this thread only, so neither
the recipient nor PostgreSQL) and wall time per delivery, and with ``--profile`` the functions
that take the time (cProfile, cumulative).

    .venv/bin/python bench/delivery/profile_one.py --messages 200 --profile
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import processes
from exchange import Exchange, gateway_cli, push_to, scratch_schema
from sqlalchemy import select
from traffic import sign_envelopes

from gateway.messages.models import Delivery
from gateway.monitoring import events
from gateway.settings import Settings
from gateway.store.db import transaction
from gateway.web.app import create_app


def parse_options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=200, help="deliveries to measure (200)")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions")
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test")
    return parser.parse_args(argv)


def measure(options: argparse.Namespace, run: Exchange, database_url: str | None) -> dict[str, Any]:
    endpoint = run.start_recipient()
    env = run.env(database_url, processes.free_port())
    env.pop("GATEWAY_BROKER_URL", None)  # the stub broker: deliver() is called here, not by a worker
    gateway_cli(env, "init", "--demo")
    settings = Settings.from_env(env)
    push_to(settings.database_url, endpoint)
    app = create_app(settings)
    context = app.extensions["gateway"]
    client = app.test_client()
    level = events.log.level
    events.log.setLevel(logging.WARNING)  # the acceptances' request lines, one a message, not onto the screen
    try:
        for _, envelope in sign_envelopes(run.keys_dir, options.messages + 5):
            answer = client.post("/soap", data=envelope, content_type="text/xml")
            if answer.status_code != 200:
                raise RuntimeError(f"not accepted: {answer.data[:300]!r}")
    finally:
        events.log.setLevel(level)  # a delivery's line is part of what it costs, as in a worker
    with transaction(context.sessions) as session:
        ids = list(session.scalars(select(Delivery.id).order_by(Delivery.id)))
    service = context.delivery
    for delivery_id in ids[:5]:  # warm up: connections, zeep's WSDL, caches
        service.deliver(delivery_id)
    cpu, wall = [], []
    profiler = cProfile.Profile(time.thread_time) if options.profile else None  # CPU, not waiting
    for delivery_id in ids[5:]:
        c0, w0 = time.thread_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        service.deliver(delivery_id)
        if profiler:
            profiler.disable()
        cpu.append(time.thread_time() - c0)
        wall.append(time.perf_counter() - w0)
    with transaction(context.sessions) as session:
        statuses = list(session.scalars(select(Delivery.status).where(Delivery.id.in_(ids))))
    context.engine.dispose()
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(35)
    undelivered = sum(1 for s in statuses if s != "delivered")
    return {
        "deliveries": len(cpu),
        "cpu_ms_mean": 1000 * statistics.fmean(cpu),
        "cpu_ms_median": 1000 * statistics.median(cpu),
        "wall_ms_median": 1000 * statistics.median(wall),
        "undelivered": undelivered,
    }


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    workdir = Path(tempfile.mkdtemp(prefix="gateway-profile-delivery-"))
    run = Exchange(argparse.Namespace(threads=1), workdir)
    try:
        gateway_cli(run.env(None, processes.free_port()), "init", "--demo")  # the keys
        if options.sqlite:
            result = measure(options, run, None)
        else:
            with scratch_schema(options.database_url) as url:
                result = measure(options, run, url)
    finally:
        run.close()
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"{result['deliveries']} deliveries on {'SQLite' if options.sqlite else 'PostgreSQL'}: gateway CPU per "
        f"delivery {result['cpu_ms_mean']:.2f} ms mean, {result['cpu_ms_median']:.2f} ms median; wall "
        f"{result['wall_ms_median']:.2f} ms median; load average {os.getloadavg()[0]:.2f}"
    )
    if result["undelivered"]:
        print(f"PROBLEM: {result['undelivered']} deliveries not delivered")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
