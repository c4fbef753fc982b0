"""Serve a baseline (``baseline_app``) on the gateway's own serving stack.

``gateway serve`` builds its server from three helpers of ``gateway.cli.serve``: the gunicorn
options (worker class, connections, keep-alive, timeouts), the application wrapper
(``served_app``: since the asyncio worker, an ASGI bridge that reads each request whole and runs
the WSGI application in ``GATEWAY_THREADS`` threads) and the serving limits. This launcher serves
the baseline's Flask application with the very same helpers and the same ``GATEWAY_*`` settings
(workers, threads, limits), so the baselines move with every change of the serving layer; the
gateway/baseline ratios then measure the intake, not the serving stack. It is the one place the
bench uses the serving layer's code, because no command line serves another application.

A gateway without those helpers (before the asyncio worker) served plain gunicorn gthread; then,
or with ``BENCH_WORKER_CLASS`` set (run.py's ``--baseline-worker-class``), this process becomes
``gunicorn -k <class>`` with the same workers and threads. Either way this process is the master
(same pid), so run.py accounts its CPU and its workers' as the server's. gunicorn logs the worker
class it uses; run.py compares it with the gateway's.

    BENCH_BASELINE=xsd GATEWAY_PORT=8081 python bench/intake/baseline_serve.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from gateway.cli import serve as gateway_serve
from gateway.settings import Settings

HERE = Path(__file__).resolve().parent
SERVING_HELPERS = ("gunicorn_options", "served_app", "serving_limits", "_Gunicorn")


def main() -> None:
    settings = Settings.from_env()
    worker_class = os.environ.get("BENCH_WORKER_CLASS")
    if worker_class or not all(hasattr(gateway_serve, name) for name in SERVING_HELPERS):
        _exec_gunicorn(settings, worker_class or "gthread")
    sys.path.insert(0, str(HERE))
    import baseline_app

    app = baseline_app.create_app()
    server = gateway_serve._Gunicorn(  # the gateway's own launcher, as `gateway serve` uses it
        gateway_serve.served_app(app, settings),
        gateway_serve.gunicorn_options(settings),
        gateway_serve.serving_limits(settings),
    )
    server.run()


def _exec_gunicorn(settings: Settings, worker_class: str) -> None:
    # becomes gunicorn in place: same pid, fixed arguments
    os.execv(  # noqa: S606
        sys.executable,
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"{settings.host}:{settings.port}",
            "--workers",
            str(settings.workers),
            "--worker-class",
            worker_class,
            "--threads",
            str(settings.threads),
            "--timeout",
            "60",
            "--access-logfile",
            "-",
            "--pythonpath",
            str(HERE),
            "baseline_app:create_app()",
        ],
    )


if __name__ == "__main__":
    main()
