"""Malformed and ambiguous request framing against ``gateway serve`` as shipped (its C parser, gunicorn_h1c).

Each request is refused with its own status before any application code runs, and the connection
is closed after that one answer: the bytes behind a refused head (a smuggled second request here)
are never read as a request. The last test is the control that shows a second request on the
connection would be seen if it were served. "chunk size past 64 bits" is one that gunicorn's
pure-Python parser let through (it read on, and the body deadline ended the request with 408):
it fails if ``gateway serve`` falls back to that parser.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.serving import served_gateway

pytestmark = pytest.mark.slow

CHUNKED = b"Transfer-Encoding: chunked\r\n\r\n"
SMUGGLED = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
POST = b"POST /soap HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml; charset=utf-8\r\n"


@pytest.fixture(scope="module")
def served(served_home: Path) -> Iterator[str]:
    with served_gateway(served_home) as base:  # gunicorn's default head limits: line 4094, 100 fields of 8190
        yield base


def exchange(base: str, request: bytes) -> bytes:
    """Send ``request`` and read until the server closes the connection (which it must, within 10 s)."""
    parts = urlsplit(base)
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            except TimeoutError:
                pytest.fail(f"the connection was left open after {b''.join(chunks)[:200]!r}")
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def headers(count: int) -> bytes:
    return b"".join(b"X-Field-%d: a\r\n" % n for n in range(count))


HOSTILE = {
    # over gunicorn's head limits
    "request line over 4094 bytes": (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", b"414"),
    "header field over 8190 bytes": (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", b"431"),
    "more than 100 header fields": (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers(150) + b"\r\n", b"431"),
    # chunk sizes
    "chunk size not hexadecimal": (POST + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", b"400"),
    "negative chunk size": (POST + b"Transfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n", b"400"),
    "chunk size with 0x": (POST + b"Transfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n", b"400"),
    "chunk size past 64 bits": (POST + CHUNKED + b"f" * 40 + b"\r\nabc\r\n0\r\n\r\n", b"400"),
    "chunk longer than its size": (POST + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n", b"400"),
    # smuggling: two framings, or one that cannot be trusted
    "Content-Length and Transfer-Encoding": (
        POST + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
        b"400",
    ),
    "Transfer-Encoding and Content-Length": (
        POST + b"Transfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n" + SMUGGLED,
        b"400",
    ),
    "two equal Content-Lengths": (POST + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\n<a/>\n", b"400"),
    "two different Content-Lengths": (POST + b"Content-Length: 0\r\nContent-Length: 36\r\n\r\n" + SMUGGLED, b"400"),
    "Content-Length as a list": (POST + b"Content-Length: 5, 5\r\n\r\n<a/>\n", b"400"),
    "Content-Length with a sign": (POST + b"Content-Length: +5\r\n\r\n<a/>\n", b"400"),
    "Content-Length negative": (POST + b"Content-Length: -5\r\n\r\n" + SMUGGLED, b"400"),
    "space before the colon": (POST + b"Content-Length : 36\r\n\r\n" + SMUGGLED, b"400"),
    "Transfer-Encoding not ending in chunked": (POST + b"Transfer-Encoding: gzip\r\n\r\n" + SMUGGLED, b"400"),
    "Transfer-Encoding identity": (POST + b"Transfer-Encoding: identity\r\n\r\n" + SMUGGLED, b"400"),
    "gzip Transfer-Encoding with Content-Length": (
        POST + b"Transfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n<a/>\n" + SMUGGLED,
        b"400",
    ),
    "chunked after another coding": (POST + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", b"400"),
    "chunked twice": (POST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", b"400"),
    "chunked in HTTP/1.0": (
        b"POST /soap HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
        b"400",
    ),
    # malformed heads
    "obsolete line folding": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", b"400"),
    "bare LF line ends": (b"GET /healthz HTTP/1.1\nHost: x\n\n", b"400"),
    "NUL in a header value": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", b"400"),
    "two Host fields": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", b"400"),
    "unknown HTTP version": (b"GET /healthz HTTP/1.7\r\nHost: x\r\n\r\n", b"400"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_framing_is_refused_and_the_connection_closed(served: str, name: str) -> None:
    request, status = HOSTILE[name]
    answer = exchange(served, request)
    assert answer.startswith(b"HTTP/1.1 " + status + b" "), answer[:300]
    assert answer.count(b"HTTP/1.1 ") == 1, answer  # nothing behind the refused head was served
    assert b"gateway" not in answer.lower()  # gunicorn's refusal: no application code ran


def test_an_unknown_transfer_coding_is_refused(served: str) -> None:
    # gunicorn's Python parser answers 501 (RFC 9112 section 6.1 SHOULD), the C parser 400: refused either way.
    answer = exchange(served, POST + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + SMUGGLED)
    assert answer.startswith((b"HTTP/1.1 400 ", b"HTTP/1.1 501 ")), answer[:300]
    assert answer.count(b"HTTP/1.1 ") == 1, answer


def test_a_second_request_on_the_connection_is_served_when_the_first_is_well_framed(served: str) -> None:
    # The control for the tests above: the same reader sees both answers of a pipelined pair.
    answer = exchange(served, SMUGGLED + SMUGGLED.replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n"))
    assert answer.count(b"HTTP/1.1 200 ") == 2, answer[:500]
