"""``gateway serve`` on SIGTERM finishes the requests in flight, then exits cleanly (a rolling restart)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from gateway.sdk.envelope import wrap
from tests.conftest import EDUCATION_DEPARTMENT, UNIVERSITY, Signer, example, free_port

pytestmark = pytest.mark.slow


def test_a_request_in_flight_at_sigterm_is_answered_and_the_server_exits_cleanly(
    served_home: Path, sign: Signer
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "GATEWAY_DATA_DIR": str(served_home / "data"),
        "GATEWAY_KEYS_DIR": str(served_home / "keys"),
        "GATEWAY_PORT": str(port),
    }
    log = served_home / "graceful.log"
    with log.open("wb") as output:
        server = subprocess.Popen([sys.executable, "-m", "gateway", "serve"], env=env, stdout=output, stderr=output)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.1)
        message_id = str(uuid.uuid4())
        body = sign(
            wrap(
                example("destination-registration"),
                sender=UNIVERSITY,
                recipient=EDUCATION_DEPARTMENT,
                service="DestinationRegistration",
                message_id=message_id,
            )
        )
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(
                f"POST /soap HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body[:1000]
            )
            time.sleep(0.5)
            server.send_signal(signal.SIGTERM)  # the request is half sent: it is in flight
            time.sleep(1.0)
            sock.sendall(body[1000:])
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200"), answer[:500]
        assert message_id.encode() in answer  # its receipt
        assert server.wait(timeout=40) == 0, log.read_text()[-2000:]
        with pytest.raises(requests.ConnectionError):  # and nothing new is taken
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
