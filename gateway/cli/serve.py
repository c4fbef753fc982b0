"""``gateway serve``: the application under gunicorn."""

from __future__ import annotations

import errno
import socket
import time
from typing import Any

import click
from flask import Flask
from gunicorn.app.base import BaseApplication

from gateway.cli.common import load_settings
from gateway.delivery.service import Sweeper, start_worker
from gateway.errors import ConfigurationError
from gateway.monitoring.serving import gunicorn_options as monitoring_options
from gateway.serving.affinity import AffinityPlan, machine_plan, pre_fork_hook
from gateway.serving.bridge import GatewayASGI
from gateway.serving.worker import GatewayWorker, ServingLimits, serving_stack_problem
from gateway.settings import Settings
from gateway.store import rate_counts
from gateway.store.db import take_turns_across_processes
from gateway.web.app import create_app


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    """gunicorn running ``app`` with ``GatewayWorker`` (the limits it reads are ``serving_limits``)."""

    def __init__(self, app: GatewayASGI, options: dict[str, Any], limits: ServingLimits) -> None:
        self._app = app
        self._options = options
        self.serving_limits = limits
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> GatewayASGI:
        return self._app


def served_app(app: Flask, settings: Settings) -> GatewayASGI:
    """The Flask application as ``gateway serve`` runs it: requests read whole, then run in threads."""
    return GatewayASGI(
        app.wsgi_app, max_body=settings.max_message_bytes, threads=settings.threads, multiprocess=settings.workers > 1
    )


def serving_limits(settings: Settings) -> ServingLimits:
    return ServingLimits(
        head_timeout=float(settings.request_head_timeout_seconds),
        body_timeout=float(settings.request_body_timeout_seconds),
        per_client=settings.max_connections_per_client,
        total=settings.max_connections,
        exempt=settings.trusted_proxies,
    )


def gunicorn_options(settings: Settings, affinity: AffinityPlan | None = None) -> dict[str, Any]:
    """gunicorn's settings for ``gateway serve`` (an asyncio worker: a waiting socket holds no thread).

    ``affinity``: where the workers run, if the caller has already worked it out (the banner
    prints it); otherwise from ``GATEWAY_CPU_AFFINITY``, the CPUs and the cgroup's quota.
    """
    return {
        "bind": f"{settings.host}:{settings.port}",
        "workers": settings.workers,
        "worker_class": GatewayWorker,
        "worker_connections": settings.max_connections,
        "keepalive": settings.keepalive_seconds,
        # gunicorn_h1c's C parser and uvloop's event loop, named rather than "auto", which would fall
        # back unseen to the pure-Python parser and asyncio's loop; `serve` checks that both import
        # (serving_stack_problem). Together a fifth less CPU per request (docs/operations.md).
        "http_parser": "fast",
        "asgi_loop": "uvloop",
        "asgi_lifespan": "on",
        "accesslog": "-",
        "timeout": 60,
        "graceful_timeout": 30,
        "control_socket_disable": True,  # gunicorn's control socket is not part of the gateway's interface
        # With setproctitle installed (gateway.monitoring.threads) gunicorn titles its processes:
        # "gunicorn: master [gateway]", "gunicorn: worker [gateway]" in ps and top.
        "proc_name": "gateway",
        # Several workers: a listening socket each (SO_REUSEPORT), the kernel spreading new connections
        # over them. On one shared socket an idle event loop accepts every connection it can, and a
        # proxy's kept-alive connections then stay with one worker: one core serving, the rest idle.
        "reuse_port": settings.workers > 1,
        # Each worker on one CPU of its own (GATEWAY_CPU_AFFINITY; gateway.serving.affinity): the
        # arbiter picks the CPU before forking, the worker pins itself before starting its threads.
        "pre_fork": pre_fork_hook(affinity or machine_plan(settings.cpu_affinity)),
    }


def check_free(host: str, port: int, patience: float = 5.0) -> None:
    """Refuse, in one line, to serve on an address something already listens on.

    Bound without SO_REUSEPORT, so that a listener of any kind (another gateway's workers with
    their shared port included) makes it fail; SO_REUSEADDR, so that connections closing on the
    port (TIME_WAIT) do not. An address in use is tried again for ``patience`` seconds, as gunicorn
    does: the workers of a gateway killed a moment ago (a restart) take a second to let go of it.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise click.ClickException(f"cannot serve on {host}:{port}: {exc.strerror}; correct GATEWAY_HOST") from None
    deadline = time.monotonic() + patience
    while True:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
                return
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise click.ClickException(f"cannot serve on {host}:{port}: {exc.strerror}") from None
        if time.monotonic() >= deadline:
            raise click.ClickException(
                f"{host}:{port} is in use (is `make run` or another gateway running?): stop it, or choose "
                "another port with --port or GATEWAY_PORT"
            )
        time.sleep(0.5)


@click.command()
@click.option("--host", default=None, help="Address to bind (default GATEWAY_HOST or 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default GATEWAY_PORT or 8080).")
@click.option("--workers", type=int, default=None, help="gunicorn worker processes (default GATEWAY_WORKERS or 1).")
def serve(host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the gateway (SOAP intake, WSDL, schemas, health checks)."""
    settings = load_settings()
    settings = settings.with_overrides(
        host=host or settings.host, port=port or settings.port, workers=workers or settings.workers
    )
    settings = shared_rate_counts(settings)
    if (problem := serving_stack_problem()) is not None:
        raise click.ClickException(problem)
    check_free(settings.host, settings.port)
    if settings.metrics_port is not None:
        check_free(settings.metrics_host or settings.host, settings.metrics_port)
    take_turns_across_processes()  # the workers share the SQLite file (gateway.store.db.DatabaseLock)
    try:
        app = create_app(settings)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    base = settings.published_url  # GATEWAY_PUBLIC_URL, or http://host:port
    click.echo(f"Graduate Exchange Gateway on {base} (listening on {settings.host}:{settings.port})")
    click.echo(f"  SOAP endpoint   {base}/soap")
    click.echo(f"  WSDL            {base}/soap?wsdl")
    click.echo(f"  schemas         {base}/schemas/gateway-1.xsd")
    click.echo(f"  health          {base}/healthz   readiness {base}/readyz")
    click.echo(f"  graduate portal {base}/graduate/")
    click.echo(f"  auditor UI      {base}/audit/   (accounts: gateway users add NAME --role auditor)")
    click.echo(f"  audit log       {base}/log/checkpoint   proofs {base}/log/proof/inclusion?index=0")
    affinity = machine_plan(settings.cpu_affinity)
    click.echo(f"  CPU affinity    {affinity.reason}")
    options: dict[str, Any] = {}
    if settings.is_embedded:
        # The in-process broker lives in the serving process: start its worker and sweep there
        # (after gunicorn forks), so accepted messages are delivered without any other process.
        options["post_worker_init"] = lambda _worker: _start_embedded_delivery(app)
        each = f" in each of the {settings.workers} worker processes" if settings.workers > 1 else ""
        click.echo(f"  delivery        in-process worker and sweep{each} (embedded default)")
        if settings.workers > 1:
            click.echo(f"  SQLite          {settings.workers} worker processes take turns at its transactions")
    if settings.workers > 1 and settings.rate_limit_storage.startswith(SHARED_COUNTS):
        shared = settings.rate_limit_storage.removeprefix(SHARED_COUNTS)
        click.echo(f"  rate limits     counted together by the {settings.workers} worker processes in {shared}")
    elif settings.workers > 1 and settings.rate_limit_storage.startswith("memory://"):
        click.echo(
            f"  rate limits     counted by each of the {settings.workers} worker processes on its own; "
            "GATEWAY_RATE_LIMIT_STORAGE=redis://... counts them together"
        )
    options.update(monitoring_options(settings))  # metrics across workers (and their port), JSON request log
    options = {**gunicorn_options(settings, affinity), **options}
    _Gunicorn(served_app(app, settings), options, serving_limits(settings)).run()


SHARED_COUNTS = f"{rate_counts.SCHEME}://"


def shared_rate_counts(settings: Settings) -> Settings:
    """``settings`` with the sign-in and short-code counts in ``data/rate-limits.db`` when several
    embedded workers would otherwise each count in memory alone (production shares a Redis)."""
    if settings.is_embedded and settings.workers > 1 and settings.rate_limit_storage.startswith("memory://"):
        shared = (settings.data_dir / "rate-limits.db").resolve()
        return settings.with_overrides(rate_limit_storage=f"{SHARED_COUNTS}{shared}")
    return settings


def _start_embedded_delivery(app: Flask) -> None:
    service = app.extensions["gateway"].delivery
    start_worker(service, threads=2)
    Sweeper(service, interval=5.0, also=app.extensions["gateway"].periodic_tasks()).start()
