"""Serving a push agency's recipient endpoint: a WSGI app on its own loopback port, in a thread."""

from __future__ import annotations

import threading
from pathlib import Path

from werkzeug.serving import BaseWSGIServer, make_server

from agencies.base import Agency


class PushEndpoint:
    """``agency``'s ``schemas/recipient-1.wsdl`` endpoint on ``host`` (any free port)."""

    def __init__(self, agency: Agency, anchor_files: tuple[Path, ...], host: str = "127.0.0.1") -> None:
        self.agency = agency
        self._server: BaseWSGIServer = make_server(host, 0, agency.push_app(anchor_files), threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"{agency.id}-push", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self._server.host}:{self._server.server_port}/soap"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
