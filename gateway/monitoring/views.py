"""``GET /metrics`` (Prometheus text format) and the per-request hooks (a JSON line, the time).

The intake (``POST /soap``) writes its own line and counts its messages (``gateway.intake.endpoint``).

``/metrics`` answers only when the operator chose how to protect it (docs/operations.md, *Metrics*):
``GATEWAY_METRICS_TOKEN`` (a bearer token the scraper sends), or ``GATEWAY_METRICS_PORT`` (a port of
its own, bound by ``gateway serve``, where nothing else is served and the endpoint is open to
whoever can reach that port). With neither it answers 404, like any unknown path.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Iterable

from flask import Blueprint, Flask, Response, abort, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Metric, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from gateway.monitoring import events
from gateway.monitoring.collector import StoreCollector
from gateway.monitoring.instruments import MULTIPROC_ENV, instruments
from gateway.web.context import gateway

blueprint = Blueprint("monitoring", __name__)
# Polled every few seconds by load balancers and scrapers: not worth a log line each.
UNLOGGED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


@blueprint.get("/metrics")
def metrics() -> Response:
    settings = gateway().settings
    on_metrics_port = settings.metrics_port is not None and request.environ.get("SERVER_PORT") == str(
        settings.metrics_port
    )
    if not on_metrics_port and not _bearer_ok(settings.metrics_token):
        abort(404)
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get(MULTIPROC_ENV):
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # every gunicorn worker's counters, added up
    else:
        registry.register(_ProcessInstruments())
    registry.register(StoreCollector(gateway()))
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


class _ProcessInstruments(Collector):
    """This process's counters and histograms (without multiprocess mode: tests, a single process)."""

    def collect(self) -> Iterable[Metric]:
        return instruments().registry.collect()


def _bearer_ok(token: str | None) -> bool:
    if not token:
        return False
    sent = request.headers.get("Authorization", "")
    return hmac.compare_digest(sent.encode(), f"Bearer {token}".encode())


def init_app(app: Flask) -> None:
    """Register ``/metrics``, time every request and write its JSON line; refuse other paths on the
    metrics port."""
    events.configure()
    app.register_blueprint(blueprint)

    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()
        port = gateway().settings.metrics_port
        if port is not None and request.environ.get("SERVER_PORT") == str(port) and request.path != "/metrics":
            abort(404)  # the metrics port serves the metrics only

    @app.after_request
    def _log(response: Response) -> Response:
        if request.path not in UNLOGGED_PATHS:
            events.request(
                method=request.method,
                path=request.path,  # never the query string
                status=response.status_code,
                client=request.remote_addr,
                seconds=time.perf_counter() - g.get("started", time.perf_counter()),
            )
        return response
