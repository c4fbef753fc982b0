"""A push recipient whose behaviour a test switches while deliveries are running, and that counts.

It is the SDK's recipient app (``gateway.sdk.recipient.recipient_app``: verifies the gateway's
signature, de-duplicates by sender and message id) behind a small WSGI layer that injects faults
and counts what reached it:

- ``accept``: handle at once and accept;
- ``slow``: the handler takes ``slow_seconds``, then accepts (deliveries stay in flight);
- ``reject``: the handler answers "rejected" (a negative acknowledgement);
- ``error``: HTTP 500 before the recipient app sees anything;
- ``late``: handled and accepted at once, but the answer is held back ``late_seconds`` (longer
  than the gateway waits), so the gateway times out on a message that *was* handled.

``handled`` counts the handler's acceptances per (sender, message id): exactly-once in effect
means every count is 1. ``offered`` counts every delivery that reached the recipient app per
(sender, message id), and ``repeats`` those among them that came after the message had been
handled: what the gateway delivered again (after a timeout, a dead worker's claims) and the
recipient recognised.
"""

from __future__ import annotations

import io
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from werkzeug.serving import make_server

from gateway.intake.catalog import GATEWAY_NS, SOAP_ENV_NS
from gateway.sdk.recipient import VerifiedDelivery, recipient_app
from gateway.xmlparse import parse_untrusted

Key = tuple[str, str]  # (sender, message id)
MODES = ("accept", "slow", "reject", "error", "late")
_DELIVERY = f"{{{SOAP_ENV_NS}}}Body/{{{GATEWAY_NS}}}Delivery"


@dataclass
class FaultyRecipient:
    mode: str = "accept"
    slow_seconds: float = 1.0
    late_seconds: float = 3.0
    handled: Counter[Key] = field(default_factory=Counter)
    offered: Counter[Key] = field(default_factory=Counter)
    repeats: Counter[Key] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)  # by the mode that answered
    in_flight: int = 0
    most_in_flight: int = 0  # the most deliveries it was handed at one time
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def switch(self, mode: str) -> None:
        assert mode in MODES, mode
        self.mode = mode

    def handle(self, delivery: VerifiedDelivery) -> bool:
        mode = self.mode
        if mode == "slow":
            time.sleep(self.slow_seconds)
        if mode == "reject":
            return False
        with self._lock:
            self.handled[(delivery.sender, delivery.message_id)] += 1
        return True

    @property
    def duplicates(self) -> int:
        """Deliveries the recipient was offered again after it had handled them."""
        with self._lock:
            return sum(self.repeats.values())

    def snapshot(self) -> str:
        with self._lock:
            twice = {key: n for key, n in self.handled.items() if n > 1}
            return (
                f"recipient: mode {self.mode}, {len(self.handled)} messages handled "
                f"({sum(self.handled.values())} handler calls, handled more than once: {twice or 'none'}), "
                f"{sum(self.offered.values())} deliveries offered ({sum(self.repeats.values())} after being handled), "
                f"{self.in_flight} in flight, "
                f"answers by mode {dict(self.requests)}"
            )

    def wsgi(self, anchors: Iterable[Path]) -> Callable[..., Iterable[bytes]]:
        """The recipient app behind the fault-injecting, counting layer."""
        app = recipient_app(self.handle, tuple(anchors))

        def layer(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
            mode = self.mode
            with self._lock:
                self.requests[mode] += 1
            if mode == "error":
                start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
                return [b"injected failure"]
            key = _key(body)
            with self._lock:
                self.in_flight += 1
                self.most_in_flight = max(self.most_in_flight, self.in_flight)
                if key:
                    self.offered[key] += 1
                    if self.handled[key]:
                        self.repeats[key] += 1
            try:
                answer = b"".join(app(environ, start_response))
            finally:
                with self._lock:
                    self.in_flight -= 1
            if mode == "late":
                time.sleep(self.late_seconds)
            return [answer]

        return layer


def _key(body: bytes) -> Key | None:
    try:
        delivery = parse_untrusted(body).getroot().find(_DELIVERY)
    except Exception:
        return None
    if delivery is None:
        return None
    return (delivery.findtext(f"{{{GATEWAY_NS}}}Sender") or "", delivery.findtext(f"{{{GATEWAY_NS}}}MessageId") or "")


@contextmanager
def serve_faulty_recipient(recipient: FaultyRecipient, anchors: Iterable[Path]) -> Iterator[str]:
    """Serve ``recipient`` on 127.0.0.1 in a thread; yields its SOAP endpoint URL."""
    server = make_server("127.0.0.1", 0, recipient.wsgi(anchors), threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="faulty-recipient", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/soap"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
