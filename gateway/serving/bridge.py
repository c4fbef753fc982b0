"""``GatewayASGI``: the WSGI application behind an asyncio front, one whole request at a time.

Why not a2wsgi or asgiref's adapters: they hand the WSGI application a stream that reads the body
from the socket as the application asks for it, so a client that sends its body slowly holds one
of the application's threads for as long as it likes. Here the body is read on the event loop,
whole (within the worker's body deadline), before a thread is taken; the application then runs in
a bounded pool of threads and its answer is collected and written by the loop.

A body larger than the size limit is never cut: reading stops one byte past the limit and the
application receives a request whose ``Content-Length`` says that it is over, so it refuses it the
way it refuses a declared oversize request (413, PAYLOAD_TOO_LARGE for SOAP), and the connection
is closed after the answer, since the rest of the body was not read.
"""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from gateway.monitoring.threads import REQUEST, name_thread

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class GatewayASGI:
    """An ASGI application that reads each request whole and runs ``wsgi_app`` in ``threads`` threads."""

    def __init__(self, wsgi_app: WSGIApplication, *, max_body: int, threads: int, multiprocess: bool = False) -> None:
        self.wsgi_app = wsgi_app
        self.max_body = max_body
        self.multiprocess = multiprocess
        self.executor = ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix=REQUEST, initializer=name_thread, initargs=(REQUEST,)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":  # websockets: the gateway has none
            return
        declared = _declared_length(scope)
        if declared is not None and declared > self.max_body:
            body: bytes | None = b""  # refused on its word, without reading a byte of the body
            over = True
        else:
            body, over = await self._read_body(receive)
        if body is None:
            return  # the client went away (or its deadline passed) before the body was whole
        environ = self._environ(scope, body, over)
        loop = asyncio.get_running_loop()
        status, headers, chunks = await loop.run_in_executor(self.executor, self._run, environ)
        if over:
            headers.append((b"connection", b"close"))  # the rest of the body was never read
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"".join(chunks), "more_body": False})

    async def _read_body(self, receive: Receive) -> tuple[bytes | None, bool]:
        """The whole body, or the first ``max_body + 1`` bytes and True when it is larger than the limit."""
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None, False
            chunk = message.get("body", b"")
            if chunk:
                parts.append(chunk)
                size += len(chunk)
                if size > self.max_body:
                    return b"".join(parts)[: self.max_body + 1], True
            if not message.get("more_body", False):
                return b"".join(parts), False

    def _environ(self, scope: Scope, body: bytes, over: bool) -> dict[str, Any]:
        server = scope.get("server") or ("localhost", 80)
        client = scope.get("client") or ("", 0)
        environ: dict[str, Any] = {
            "REQUEST_METHOD": scope["method"],
            "SCRIPT_NAME": scope.get("root_path", "").encode("utf-8").decode("latin-1"),
            "PATH_INFO": scope["path"].encode("utf-8").decode("latin-1"),
            "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
            "SERVER_NAME": str(server[0]),
            "SERVER_PORT": str(server[1]),
            "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
            "REMOTE_ADDR": str(client[0]),
            "REMOTE_PORT": str(client[1]),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": scope.get("scheme", "http"),
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": self.multiprocess,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
        }
        for raw_name, raw_value in scope.get("headers", []):
            name = raw_name.decode("latin-1").upper().replace("-", "_")
            value = raw_value.decode("latin-1")
            if name == "TRANSFER_ENCODING":
                continue  # the body is read whole: its length is known
            key = name if name == "CONTENT_LENGTH" or name == "CONTENT_TYPE" else "HTTP_" + name
            environ[key] = f"{environ[key]},{value}" if key in environ and key.startswith("HTTP_") else value
        # The length of what was read; over the limit, a length that says so (the application refuses it).
        declared = environ.get("CONTENT_LENGTH", "")
        environ["CONTENT_LENGTH"] = declared if over and declared.isdigit() else str(len(body))
        if over:
            environ["gateway.body_over_limit"] = True
        return environ

    def _run(self, environ: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], list[bytes]]:
        """Call the WSGI application in a pool thread; its status, headers and body."""
        started: list[Any] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], None]:
            started[:] = [status, headers]
            return chunks.append

        chunks: list[bytes] = []
        result: Iterable[bytes] = self.wsgi_app(environ, start_response)
        try:
            for chunk in result:
                if chunk:
                    chunks.append(chunk)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        status, headers = started
        encoded = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]
        return int(status.split(" ", 1)[0]), encoded, chunks

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.executor.shutdown(wait=True)
                await send({"type": "lifespan.shutdown.complete"})
                return


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            return int(value) if value.isdigit() else None
    return None
