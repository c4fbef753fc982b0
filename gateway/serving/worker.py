"""``GatewayWorker``: gunicorn's asyncio worker, with connection limits and read deadlines.

gunicorn's ASGI worker already keeps a waiting socket off every thread. What it lacks for a
gateway on a hostile network is here, in a subclass of its protocol:

- a connection beyond the client's or the process's limit (``guard.ConnectionLimits``) gets a
  one-line 503 and is closed before anything is read;
- the head of the first request must arrive within ``head_timeout`` seconds of connecting (later
  heads on a kept-alive connection within gunicorn's ``keepalive`` idle time), and a body within
  ``body_timeout`` of its head; otherwise 408 and the connection is closed. A client that sends
  one byte a second therefore holds a few kilobytes for a few seconds, never a thread.

The application (``bridge.GatewayASGI``) sees only requests read whole.

Requests are parsed by gunicorn_h1c, gunicorn's C HTTP/1.1 parser, not its pure-Python one, which
took much of the event loop's share of the interpreter lock under load. The
parser calls back into the protocol the same way, from ``data_received`` (``_on_headers_complete``
and ``_on_message_complete``, which arm and disarm the deadlines here), and applies the same head
limits and framing checks (``tests/http/test_framing.py``). The event loop is uvloop's: the same
asyncio protocol and timer interface, on libuv. ``serving_stack_problem`` must be asked before the
first connection (``gateway serve`` and ``GatewayWorker`` do): see its docstring.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from dataclasses import dataclass
from typing import Any

from gunicorn.asgi.protocol import ASGIProtocol
from gunicorn.workers.gasgi import ASGIWorker

from gateway.serving.affinity import pin_this_process
from gateway.serving.guard import ConnectionLimits


@dataclass(frozen=True)
class ServingLimits:
    """What ``GatewayWorker`` enforces (from the GATEWAY_* settings; docs/operations.md)."""

    head_timeout: float = 10.0
    body_timeout: float = 30.0
    per_client: int = 32
    total: int = 4096
    exempt: tuple[str, ...] = ()  # trusted proxies: no per-client limit


def plain_response(status: int, reason: str, text: str) -> bytes:
    """A complete HTTP/1.1 answer that closes the connection (written before any application runs)."""
    body = (text + "\n").encode("utf-8")
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode("ascii") + body


class GuardedProtocol(ASGIProtocol):  # type: ignore[misc]
    """gunicorn's HTTP/1 protocol with the limits and deadlines of ``ServingLimits``."""

    def __init__(self, worker: GatewayWorker) -> None:
        super().__init__(worker)
        self._gateway_worker = worker
        self._client: str | None = None
        self._refused = False
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else "local"
        refused = self._gateway_worker.connections.admit(address)
        if refused is not None:
            self._refused = True
            transport.write(plain_response(503, "Service Unavailable", f"{refused}; close one and try again"))
            transport.close()
            return
        self._client = address
        super().connection_made(transport)
        self._arm(self._gateway_worker.limits.head_timeout, "the request head did not arrive in time")

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._refused:
            return  # never counted, never started
        self._disarm()
        if self._client is not None:
            self._gateway_worker.connections.release(self._client)
            self._client = None
        super().connection_lost(exc)

    def _on_headers_complete(self) -> Any:
        result = super()._on_headers_complete()
        self._arm(self._gateway_worker.limits.body_timeout, "the request body did not arrive in time")
        return result

    def _on_message_complete(self) -> None:
        self._disarm()
        super()._on_message_complete()

    def _arm(self, seconds: float, why: str) -> None:
        self._disarm()
        self._deadline = self._gateway_worker.loop.call_later(seconds, self._expired, why)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, why: str) -> None:
        self._deadline = None
        if self._closed:
            return
        # No answer has started: the application runs only once the whole request is read.
        self._safe_write(plain_response(408, "Request Timeout", why))
        self._close_transport()
        if self._request_ready is not None:
            self._request_ready.set()  # wake the connection's task so that it ends


def serving_stack_problem() -> str | None:
    """Why gunicorn cannot parse with gunicorn_h1c or loop with uvloop, or None if it can do both.

    gunicorn caches what it found of gunicorn_h1c on the class it is asked from, but reads the
    cache from ``ASGIProtocol``: asked first from a subclass (``GuardedProtocol``), it would refuse
    ``http_parser = "fast"`` on every connection (and ``auto`` would fall back to the Python parser
    unseen). Asked here, from ``ASGIProtocol`` itself, before any connection, the cache is where
    gunicorn reads it.
    """
    if not ASGIProtocol._check_h1c_protocol_available():
        return "gunicorn_h1c (gunicorn's C HTTP parser) is not installed: pip install -c constraints.txt -e ."
    if not ASGIProtocol._h1c_has_limits:
        return "gunicorn_h1c is too old for gunicorn's request limits: pip install -c constraints.txt -e ."
    try:
        importlib.import_module("uvloop")
    except ImportError:
        return "uvloop (the serving event loop) is not installed: pip install -c constraints.txt -e ."
    return None


# How long a thread that wants the interpreter lock waits before the holder is asked to let go
# (Python's default: 5 ms). The intake's group commit (gateway.intake.writer) is one thread that
# releases the lock at every statement it sends to the database and must then win it back from the
# request threads' CPU work; at 5 ms a batch spent most of its time waiting for it. Measured with
# bench/intake (2026-12-06, 2 cores): SQLite closed loop 147 -> 173 accepted/s (134 -> 156 per
# server CPU-second); PostgreSQL, 2 workers, 120/s offered: p50 203 -> 70 ms, p99 393 -> 157 ms.
SWITCH_INTERVAL_SECONDS = 0.0005


class GatewayWorker(ASGIWorker):  # type: ignore[misc]
    """gunicorn worker class for ``gateway serve`` (the limits come from the application object)."""

    def init_process(self) -> None:
        sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
        # the CPU the arbiter chose (gateway.serving.affinity), before any of the worker's threads starts
        pin_this_process(getattr(self, "gateway_cpu", None))
        super().init_process()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.cfg.http_parser == "fast" and (problem := serving_stack_problem()) is not None:
            raise RuntimeError(problem)
        self.limits: ServingLimits = getattr(self.app, "serving_limits", ServingLimits())
        self.connections = ConnectionLimits(self.limits.per_client, self.limits.total, self.limits.exempt)

    def _setup_event_loop(self) -> None:
        super()._setup_event_loop()
        loop = self.loop
        create_server = loop.create_server

        async def create_guarded_server(_factory: Any, *args: Any, **kwargs: Any) -> Any:
            # ASGIWorker._serve builds its servers with its own protocol: serve ours instead.
            return await create_server(lambda: GuardedProtocol(self), *args, **kwargs)

        loop.create_server = create_guarded_server
