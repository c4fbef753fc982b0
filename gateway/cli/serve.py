"""``gateway serve``: the application under gunicorn."""

from __future__ import annotations

from typing import Any

import click
from flask import Flask
from gunicorn.app.base import BaseApplication

from gateway.cli.common import load_settings
from gateway.delivery.service import Sweeper, start_worker
from gateway.errors import ConfigurationError
from gateway.monitoring.serving import gunicorn_options
from gateway.web.app import create_app


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, app: Flask, options: dict[str, Any]) -> None:
        self._app = app
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return self._app


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
    if settings.is_embedded and settings.workers > 1:
        raise click.ClickException("the embedded default runs one worker process; set GATEWAY_BROKER_URL for more")
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
    options: dict[str, Any] = {}
    if settings.is_embedded:
        # The in-process broker lives in the serving process: start its worker and sweep there
        # (after gunicorn forks), so accepted messages are delivered without any other process.
        options["post_worker_init"] = lambda _worker: _start_embedded_delivery(app)
        click.echo("  delivery        in-process worker and sweep (embedded default)")
    options.update(gunicorn_options(settings))  # metrics across workers (and their port), JSON request log
    _Gunicorn(
        app,
        {
            "bind": f"{settings.host}:{settings.port}",
            "workers": settings.workers,
            "worker_class": "gthread",
            "threads": settings.threads,
            "accesslog": "-",
            "timeout": 60,
            **options,
        },
    ).run()


def _start_embedded_delivery(app: Flask) -> None:
    service = app.extensions["gateway"].delivery
    start_worker(service, threads=2)
    Sweeper(service, interval=5.0, also=app.extensions["gateway"].periodic_tasks()).start()
