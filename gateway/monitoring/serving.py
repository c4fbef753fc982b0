"""What ``gateway serve`` adds to gunicorn for the metrics and the logs.

- a fresh ``PROMETHEUS_MULTIPROC_DIR`` per run (a temporary folder, removed when gunicorn exits),
  where each worker process keeps its counters and histograms for ``/metrics`` to add up;
- the metrics port, when ``GATEWAY_METRICS_PORT`` is set, bound beside the main address;
- no gunicorn access log: every request has its JSON line (``gateway.monitoring.events``) instead,
  which leaves out query strings.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from prometheus_client import multiprocess

from gateway.monitoring.instruments import MULTIPROC_ENV
from gateway.settings import Settings


def gunicorn_options(settings: Settings) -> dict[str, Any]:
    """Gunicorn settings to merge over ``gateway serve``'s own; sets ``PROMETHEUS_MULTIPROC_DIR``."""
    folder = tempfile.mkdtemp(prefix="gateway-metrics-")
    os.environ[MULTIPROC_ENV] = folder
    bind = [_address(settings.host, settings.port)]
    if settings.metrics_port is not None:
        bind.append(_address(settings.metrics_host or settings.host, settings.metrics_port))
    return {
        "bind": bind,
        "accesslog": None,
        "child_exit": lambda _server, worker: multiprocess.mark_process_dead(worker.pid, folder),  # type: ignore[no-untyped-call]
        "on_exit": lambda _server: shutil.rmtree(folder, ignore_errors=True),
    }


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
