"""The CPU the serving layer adds to an intake message, in process, beside a bare Flask view.

    .venv/bin/python bench/intake/profile_serving.py [--requests N] [--rounds N]

Initialises a demo gateway in a temporary directory (SQLite, ``gateway init --demo``), accepts one
signed registration through the pipeline, then replaces ``Pipeline.process`` with a function that
returns that acceptance again: what is left of ``POST /soap`` is the serving layer (reading the
request, the answer's signature, the JSON line, the counters, and whatever the web framework runs
around them). It calls the gateway's WSGI application ``N`` times per round, as ``gateway serve``'s
threads do, and beside it, in the same rounds, a bare Flask application whose one view echoes the
body: the least a Flask request costs here. Prints the CPU time of the calling thread per request
for both, per round, and their ratio. Nothing is served over a socket; run it on one CPU for
steadier figures: ``taskset -c 1 .venv/bin/python bench/intake/profile_serving.py``.

The request's JSON line is written (to ``/dev/null``), as ``gateway serve`` writes it; an
acceptance has no text line at INFO (``accepted ...`` is at DEBUG).
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

from database import init_demo_home, scratch_database  # noqa: E402
from envelopes import SIGNATURE_TTL, generate, load_traffic  # noqa: E402

WsgiApp = Callable[..., Iterable[bytes]]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per round and application (3000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, alternating the two applications (3)")
    options = parser.parse_args(argv)
    if options.requests < 1 or options.rounds < 1:
        parser.error("--requests and --rounds must be at least 1")
    with (
        tempfile.TemporaryDirectory(prefix="serving-profile-") as tmp,
        scratch_database(Path(tmp) / "data", None) as database_url,
    ):
        work = Path(tmp)
        (work / "metrics").mkdir()
        # the metrics in files, as gateway serve keeps them
        init_demo_home(
            work, database_url, int(SIGNATURE_TTL.total_seconds()), PROMETHEUS_MULTIPROC_DIR=str(work / "metrics")
        )
        from gateway.clock import SystemClock
        from gateway.web.app import create_app

        gateway_app = create_app()
        # The request's JSON line is written as gateway serve writes it, but not onto this screen.
        from gateway.monitoring import events

        devnull = open(os.devnull, "w")  # noqa: SIM115  (closed at the end)
        for handler in events.log.handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(devnull)
        pipeline = gateway_app.extensions["gateway"].pipeline
        (segment,) = generate(load_traffic(HERE / "traffic.json", ROOT / "examples"), [2], work / "keys")
        body = segment.bodies[0]
        accepted = pipeline.process(body, SystemClock().now(), client="127.0.0.1")
        pipeline.process = lambda raw, received_at, client=None: accepted  # the serving layer alone
        applications: dict[str, WsgiApp] = {"gateway": gateway_app, "bare Flask": _bare_flask()}
        spent: dict[str, list[float]] = {name: [] for name in applications}
        for application in applications.values():
            post_soap(application, body, 200)  # warm-up
        for _ in range(options.rounds):
            for name, application in applications.items():
                started = time.thread_time()
                post_soap(application, body, options.requests)
                spent[name].append((time.thread_time() - started) / options.requests * 1e6)
        gateway_app.extensions["gateway"].engine.dispose()
        devnull.close()
    for name, values in spent.items():
        print(
            f"{name:<11} CPU a request: {', '.join(f'{v:.0f}' for v in values)} us "
            f"(median {statistics.median(values):.0f})"
        )
    print(f"gateway / bare Flask: {statistics.median(spent['gateway']) / statistics.median(spent['bare Flask']):.2f}")
    return 0


def _bare_flask() -> WsgiApp:
    from flask import Flask, Response, request

    bare = Flask("bare")

    @bare.post("/soap")
    def echo() -> Response:
        return Response(request.get_data(), content_type="text/xml; charset=utf-8")

    return bare


def post_soap(application: WsgiApp, body: bytes, count: int) -> None:
    """``count`` POST /soap requests of ``body`` through ``application``; each must be answered 200.

    Also used by ``bench/delivery/profile_recipient.py``."""
    statuses: list[str] = []

    def start_response(status: str, headers: object, exc_info: object = None) -> None:
        statuses.append(status)

    for _ in range(count):
        statuses.clear()
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/soap",
            "SCRIPT_NAME": "",
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8080",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "CONTENT_TYPE": "text/xml; charset=utf-8",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "wsgi.version": (1, 0),
        }
        b"".join(application(environ, start_response))
        if not statuses[0].startswith("200"):
            raise SystemExit(f"POST /soap answered {statuses[0]}, not 200")


if __name__ == "__main__":
    raise SystemExit(main())
