"""A recipient system for tests: the SDK's recipient app served on a loopback port in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from werkzeug.serving import make_server

from gateway.sdk.recipient import VerifiedDelivery, recipient_app


@dataclass
class RecordingRecipient:
    """Accepts (or not) and records every delivery it is handed."""

    behaviour: str = "accept"  # accept | reject | slow
    slow_seconds: float = 3.0
    received: list[VerifiedDelivery] = field(default_factory=list)

    def handle(self, delivery: VerifiedDelivery) -> bool:
        if self.behaviour == "slow":
            time.sleep(self.slow_seconds)
        self.received.append(delivery)
        return self.behaviour != "reject"


@contextmanager
def serve_recipient(recipient: RecordingRecipient, anchors: tuple[Path, ...]) -> Iterator[str]:
    """Serve ``recipient`` on 127.0.0.1; yields its SOAP endpoint URL."""
    server = make_server("127.0.0.1", 0, recipient_app(recipient.handle, anchors), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/soap"
    finally:
        server.shutdown()
        thread.join(timeout=5)
