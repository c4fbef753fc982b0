"""``GatewayASGI`` in process: the environ it builds, whole bodies, and the size limit."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from gateway.serving.bridge import GatewayASGI
from gateway.serving.guard import ConnectionLimits


def echo(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    body = environ["wsgi.input"].read()
    seen = {k: environ.get(k) for k in ("PATH_INFO", "QUERY_STRING", "CONTENT_LENGTH", "HTTP_X_TWICE", "REMOTE_ADDR")}
    seen["over"] = environ.get("gateway.body_over_limit", False)
    seen["te"] = environ.get("HTTP_TRANSFER_ENCODING")
    start_response("201 Created", [("Content-Type", "text/plain")])
    return [repr(seen).encode(), b"|", body]


def call(app: GatewayASGI, headers: list[tuple[bytes, bytes]], pieces: list[bytes]) -> tuple[int, bytes, list[Any]]:
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": p, "more_body": i < len(pieces) - 1} for i, p in enumerate(pieces)]
    received = 0

    async def receive() -> dict[str, Any]:
        nonlocal received
        received += 1
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/soap/é",
        "query_string": b"wsdl",
        "headers": headers,
        "client": ("127.0.0.9", 5555),
        "server": ("127.0.0.1", 8080),
    }
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], sent[1]["body"], sent[0]["headers"] + [("received", received)]


def test_the_body_reaches_the_application_whole() -> None:
    app = GatewayASGI(echo, max_body=100, threads=2)
    headers = [(b"transfer-encoding", b"chunked"), (b"x-twice", b"a"), (b"x-twice", b"b")]
    status, body, _ = call(app, headers, [b"one ", b"two ", b"three"])
    assert status == 201
    seen, _, echoed = body.partition(b"|")
    assert echoed == b"one two three"
    assert b"'CONTENT_LENGTH': '13'" in seen and b"'te': None" in seen
    assert b"'HTTP_X_TWICE': 'a,b'" in seen and b"'REMOTE_ADDR': '127.0.0.9'" in seen
    # PEP 3333: PATH_INFO holds the path's UTF-8 bytes as latin-1 characters.
    assert f"'PATH_INFO': {'/soap/é'.encode().decode('latin-1')!r}".encode() in seen
    assert b"'QUERY_STRING': 'wsdl'" in seen


def test_a_chunked_body_over_the_limit_says_so_and_closes() -> None:
    app = GatewayASGI(echo, max_body=10, threads=1)
    _status, body, headers = call(app, [(b"transfer-encoding", b"chunked")], [b"x" * 8, b"y" * 8, b"z" * 8])
    seen, _, echoed = body.partition(b"|")
    assert b"'CONTENT_LENGTH': '11'" in seen and b"'over': True" in seen
    assert echoed == b"x" * 8 + b"yyy"  # one byte past the limit, never more
    assert (b"connection", b"close") in headers
    assert ("received", 2) in headers  # stopped reading once over


def test_a_declared_length_over_the_limit_is_not_read() -> None:
    app = GatewayASGI(echo, max_body=10, threads=1)
    _status, body, headers = call(app, [(b"content-length", b"5000")], [b"x" * 100])
    assert b"'CONTENT_LENGTH': '5000'" in body
    assert ("received", 0) in headers


def test_connection_limits_count_per_address_and_in_all() -> None:
    limits = ConnectionLimits(per_client=2, total=3, exempt=["10.0.0.0/8"])
    assert limits.admit("192.0.2.1") is None and limits.admit("192.0.2.1") is None
    assert "your address holds its limit of 2" in (limits.admit("192.0.2.1") or "")
    assert limits.admit("10.1.2.3") is None  # a trusted proxy: no per-client limit, but the total counts
    assert "the gateway holds its limit of 3" in (limits.admit("10.1.2.3") or "")
    limits.release("192.0.2.1")
    assert limits.admit("10.1.2.3") is None
    assert limits.open == 3 and limits.open_from("10.1.2.3") == 2
