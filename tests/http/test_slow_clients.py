"""Slow, idle and greedy clients against ``gateway serve`` as shipped (issue: hostile traffic).

The attackers connect from 127.0.0.2 and 127.0.0.3 (the whole of 127/8 is loopback on Linux), so
that the per-client limit counts them apart from the honest client on 127.0.0.1. Each test holds
its attack open while the honest client asks ``/healthz`` and must be answered within a second.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.serving import served_gateway

pytestmark = pytest.mark.slow

LIMITS = {
    "GATEWAY_REQUEST_HEAD_TIMEOUT": "3",
    "GATEWAY_REQUEST_BODY_TIMEOUT": "3",
    "GATEWAY_MAX_CONNECTIONS_PER_CLIENT": "20",
    "GATEWAY_MAX_MESSAGE_BYTES": "4096",
}


@pytest.fixture(scope="module")
def served(served_home: Path) -> Iterator[str]:
    with served_gateway(served_home, LIMITS) as base:
        yield base


def connect(base: str, source: str) -> socket.socket:
    parts = urlsplit(base)
    sock = socket.socket()
    sock.settimeout(15)
    sock.bind((source, 0))
    sock.connect((parts.hostname or "127.0.0.1", parts.port or 80))
    return sock


def answered_quickly(base: str) -> float:
    """Seconds the honest client waited for ``/healthz`` (which must answer 200)."""
    started = time.monotonic()
    answer = requests.get(f"{base}/healthz", timeout=5)
    assert answer.status_code == 200
    return time.monotonic() - started


def read_answer(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


@contextmanager
def attackers(base: str, source: str, count: int, first: bytes) -> Iterator[list[socket.socket]]:
    with ExitStack() as stack:
        socks = []
        for _ in range(count):
            sock = stack.enter_context(connect(base, source))
            if first:
                sock.sendall(first)
            socks.append(sock)
        yield socks


SLOW_HEAD = (b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"X-Slow: a\r\n", b"request head did not arrive in time")
SLOW_BODY = (
    b"POST /soap HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: 3000\r\n\r\n<a>",
    b"<b/>",
    b"request body did not arrive in time",
)


@pytest.mark.parametrize(("first", "trickle", "why"), [SLOW_HEAD, SLOW_BODY], ids=["heads", "bodies"])
def test_slow_clients_do_not_starve_honest_ones(served: str, first: bytes, trickle: bytes, why: bytes) -> None:
    # Twenty clients send a request a few bytes at a time, more than the old server had threads.
    with attackers(served, "127.0.0.2", 20, first) as socks:
        for _ in range(3):
            for sock in socks:
                sock.sendall(trickle)
            assert answered_quickly(served) < 1.0
            time.sleep(0.3)
        # The deadline (3 s here) ends them with 408, never a thread held for good.
        answers = [read_answer(sock) for sock in socks]
    assert all(answer.startswith(b"HTTP/1.1 408") for answer in answers), answers[:2]
    assert why in answers[0]


def test_idle_connections_do_not_starve_honest_clients(served: str) -> None:
    with attackers(served, "127.0.0.3", 18, b"") as first, attackers(served, "127.0.0.2", 18, b"") as second:
        assert len(first) + len(second) == 36
        for _ in range(3):
            assert answered_quickly(served) < 1.0
        started = time.monotonic()
        answers = [read_answer(sock) for sock in first + second]
        assert time.monotonic() - started < 12  # closed by the head deadline, not held
    assert all(answer.startswith(b"HTTP/1.1 408") for answer in answers)


def test_one_address_cannot_hold_more_than_its_share(served: str) -> None:
    with attackers(served, "127.0.0.2", 20, b"") as socks:
        time.sleep(0.3)  # let the server count them
        with connect(served, "127.0.0.2") as extra:
            refused = read_answer(extra)
        assert refused.startswith(b"HTTP/1.1 503")
        assert b"your address holds its limit of 20 open connections" in refused
        # Everyone else is still served, one connection or many.
        with requests.Session() as honest:
            for _ in range(5):
                assert honest.get(f"{served}/healthz", timeout=5).status_code == 200
        del socks


def chunked(body: bytes, piece: int = 1000) -> bytes:
    out = b""
    for start in range(0, len(body), piece):
        part = body[start : start + piece]
        out += f"{len(part):x}\r\n".encode() + part + b"\r\n"
    return out + b"0\r\n\r\n"


def post_raw(base: str, head: bytes, body: bytes) -> bytes:
    with connect(base, "127.0.0.1") as sock:
        sock.sendall(head + body)
        return read_answer(sock)


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
def test_a_body_over_the_limit_is_refused_never_cut(served: str, framing: str) -> None:
    body = b"<e>" + b"x" * 10_000 + b"</e>"  # over the 4096-byte limit of this server
    head = b"POST /soap HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml; charset=utf-8\r\nConnection: close\r\n"
    if framing == "chunked":
        answer = post_raw(served, head + b"Transfer-Encoding: chunked\r\n\r\n", chunked(body))
    else:
        answer = post_raw(served, head + f"Content-Length: {len(body)}\r\n\r\n".encode(), body)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"PAYLOAD_TOO_LARGE" in answer


def test_a_chunked_body_under_the_limit_is_read_whole(served: str) -> None:
    # Well-formed XML that is no SOAP envelope: the refusal proves the parser saw the whole body.
    body = b"<e>" + b"x" * 3000 + b"</e>"
    head = b"POST /soap HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml; charset=utf-8\r\nConnection: close\r\n"
    answer = post_raw(served, head + b"Transfer-Encoding: chunked\r\n\r\n", chunked(body, 700))
    # SOAP 1.1 answers a fault with 500; this one names what the parser found at the end of the body.
    assert answer.startswith(b"HTTP/1.1 500"), answer[:300]
    assert b"SOAP_ENVELOPE_INVALID: the root element is e" in answer
