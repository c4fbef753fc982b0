"""``gateway serve`` on an address something already listens on: one line, no banner, no traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path


def test_a_port_in_use_is_refused_in_one_line(home: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            **os.environ,
            "GATEWAY_DATA_DIR": str(home / "data"),
            "GATEWAY_KEYS_DIR": str(home / "keys"),
            "GATEWAY_PORT": str(port),
        }
        done = subprocess.run(
            [sys.executable, "-m", "gateway", "serve"], env=env, capture_output=True, text=True, timeout=60, check=False
        )
    assert done.returncode == 1
    assert done.stdout == ""  # no banner for a gateway that does not start
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == [
        f"Error: 127.0.0.1:{port} is in use (is `make run` or another gateway running?): stop it, or choose "
        "another port with --port or GATEWAY_PORT"
    ]
