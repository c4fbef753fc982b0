"""The load generator: a fixed number of keep-alive connections, each sending envelopes back to back.

Connection ``k`` of ``n`` is a thread with its own socket. The envelopes are handed out from one
shared counter, so each is sent exactly once; a run ends when they are used up or at the deadline.
With ``repeat`` (for a baseline, which has no replay check) they are sent over again until the deadline.
The HTTP client is a minimal HTTP/1.1 one on a raw socket (no header parsing beyond status and
Content-Length): the generator shares the machine's cores with the server, so it must stay light.
"""

from __future__ import annotations

import itertools
import resource
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

Acceptance = Callable[[int, bytes], bool]
_HEADER_END = b"\r\n\r\n"


@dataclass
class LoadResult:
    """What one run of the generator observed."""

    generator: str
    connections: int
    requests: int = 0
    failures: int = 0
    elapsed_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    first_failure: str | None = None
    client_cpu_s: float = 0.0
    p50_s: float | None = None  # set directly by generators that report percentiles themselves
    p99_s: float | None = None
    offered_rate: float | None = None  # open loop (openloop.py): the rate offered
    max_send_lag_s: float = 0.0  # open loop: how late the latest request left the client

    @property
    def rate(self) -> float:
        return self.requests / self.elapsed_s if self.elapsed_s else 0.0


@dataclass
class _Shared:
    """State the connection threads share; ``lock`` guards everything but the counter."""

    bodies: Sequence[bytes]
    deadline: float
    accept: Acceptance
    result: LoadResult
    next_index: Callable[[], int]
    repeat: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    after: Sequence[int | None] = ()  # per body: the index of the body whose answer it waits for
    answered: dict[int, threading.Event] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.answered = {index: threading.Event() for index in set(self.after) if index is not None}

    def wait_for(self, index: int) -> None:
        """Wait until the body that body ``index`` depends on is answered (or the deadline)."""
        if index < len(self.after) and (before := self.after[index]) is not None:
            self.answered[before].wait(max(0.0, min(self.deadline - time.monotonic(), 600.0)))

    def done(self, index: int) -> None:
        if (event := self.answered.get(index)) is not None:
            event.set()


def drive(
    host: str,
    port: int,
    path: str,
    bodies: Sequence[bytes],
    connections: int,
    accept: Acceptance,
    max_seconds: float,
    repeat: bool = False,
    after: Sequence[int | None] = (),
) -> LoadResult:
    """POST every body of ``bodies`` once over ``connections`` keep-alive connections.

    ``accept(status, body)`` tells a good answer from a failure. Stops early at ``max_seconds``;
    with ``repeat``, starts over with the first body until then. ``after[i]``, when given and not
    None, is the index of a body that must be answered before body ``i`` is sent.
    """
    result = LoadResult(generator="python", connections=connections)
    shared = _Shared(
        bodies, time.monotonic() + max_seconds, accept, result, itertools.count().__next__, repeat, after=after
    )
    threads = [
        threading.Thread(target=_connection, args=(host, port, path, shared), daemon=True) for _ in range(connections)
    ]
    cpu_before = _own_cpu()
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.elapsed_s = time.perf_counter() - started
    result.client_cpu_s = _own_cpu() - cpu_before
    return result


def _connection(host: str, port: int, path: str, shared: _Shared) -> None:
    """One connection: send, wait for the answer, record, repeat; reconnect after an error."""
    head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: text/xml; charset=utf-8\r\n"
    latencies: list[float] = []
    sock: socket.socket | None = None
    try:
        while (
            (index := shared.next_index()) < len(shared.bodies) or shared.repeat
        ) and time.monotonic() < shared.deadline:
            body = shared.bodies[index % len(shared.bodies)]
            request = f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
            shared.wait_for(index)
            sock = _send_and_record(shared, sock, host, port, request, index, None, latencies)
    finally:
        _close(sock)
        with shared.lock:
            shared.result.latencies_s.extend(latencies)


def _send_and_record(
    shared: _Shared,
    sock: socket.socket | None,
    host: str,
    port: int,
    request: bytes,
    index: int,
    since: float | None,
    latencies: list[float],
) -> socket.socket | None:
    """Send request ``index`` on ``sock`` (connecting when None), record its answer and its latency
    from ``since`` (a scheduled time; None: from sending); returns the socket, None after an error."""
    try:
        sock = sock or _connect(host, port)
        sent = time.perf_counter() if since is None else since
        status, answer = _exchange(sock, request)
        latencies.append(time.perf_counter() - sent)
    except OSError as exc:
        _close(sock)
        sock = None
        _record(shared, 0, f"connection error: {exc!r}".encode())
    else:
        _record(shared, status, answer)
    shared.done(index)
    return sock


def _record(shared: _Shared, status: int, answer: bytes) -> None:
    good = status != 0 and shared.accept(status, answer)
    with shared.lock:
        result = shared.result
        result.requests += 1
        result.statuses[status] += 1
        if not good:
            result.failures += 1
            if result.first_failure is None:
                result.first_failure = f"HTTP {status}: {answer[:600].decode('utf-8', 'replace')}"


def _connect(host: str, port: int) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _close(sock: socket.socket | None) -> None:
    if sock is not None:
        sock.close()


def _exchange(sock: socket.socket, request: bytes) -> tuple[int, bytes]:
    """Send one request and read one response; raises ``OSError`` on a closed or odd connection."""
    sock.sendall(request)
    buffer = bytearray()
    while (end := buffer.find(_HEADER_END)) < 0:
        buffer += _receive(sock)
    head = bytes(buffer[:end]).decode("latin-1")
    status = int(head.split(" ", 2)[1])
    length = _content_length(head)
    body_start = end + len(_HEADER_END)
    while len(buffer) < body_start + length:
        buffer += _receive(sock)
    return status, bytes(buffer[body_start : body_start + length])


def _receive(sock: socket.socket) -> bytes:
    chunk = sock.recv(65536)
    if not chunk:
        raise ConnectionResetError("the server closed the connection")
    return chunk


def _content_length(head: str) -> int:
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            return int(value)
    raise ConnectionError("a response without Content-Length (chunked answers are not supported)")


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
