"""The benchmark's push recipient: the SDK's recipient app under gunicorn, counting what it handled.

    gunicorn --pythonpath bench/delivery 'recipient_app:create_app()'   (BENCH_CA_FILE: the trust anchor)

With ``BENCH_SLOW_SECONDS`` set it is the fairness phase's dead recipient: its handler sleeps that
long before accepting, past the push timeout the gateway gives it.

It does what a real recipient must: verify the gateway's signature on every ``gw:Delivery``,
de-duplicate by sender and message id, and acknowledge. ``GET /count`` answers how many messages
its handler accepted (run it with one worker process, so that the count is the whole count).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from flask import Flask

from gateway.sdk.recipient import VerifiedDelivery, recipient_app


def create_app() -> Flask:
    handled = {"count": 0}
    lock = threading.Lock()
    slow = float(os.environ.get("BENCH_SLOW_SECONDS", "0"))

    def handle(_delivery: VerifiedDelivery) -> bool:
        if slow:
            time.sleep(slow)
        with lock:
            handled["count"] += 1
        return True

    app = recipient_app(handle, (Path(os.environ["BENCH_CA_FILE"]),))

    @app.get("/count")
    def count() -> dict[str, int]:
        with lock:
            return dict(handled)

    @app.get("/healthz")
    def healthz() -> str:
        return "ok"

    return app
