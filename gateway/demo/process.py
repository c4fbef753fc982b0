"""The demo's gateway as its own process: ``gateway serve`` on the demo's home, as an operator runs it.

The environment is the embedded default on that home, whatever ``GATEWAY_*`` the caller's
environment holds; the demo's own log goes to a file, so the terminal shows the progress bar.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests


class DemoError(Exception):
    """The demo cannot start (a home in use, a port taken, the gateway not coming up)."""


@contextmanager
def served_gateway(home: Path, port: int, timeout: float = 60.0) -> Iterator[str]:
    """``gateway serve`` as its own process on ``home``; yields the base URL once /healthz answers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(gateway_env(home, port))
    with (home / "serve.log").open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve"], env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while not _healthy(base):
                if process.poll() is not None:
                    raise DemoError(f"gateway serve exited with {process.returncode}; see {home / 'serve.log'}")
                if time.monotonic() > deadline:
                    raise DemoError(f"gateway serve did not answer {base}/healthz within {timeout:.0f} s")
                time.sleep(0.1)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def gateway_env(home: Path, port: int) -> dict[str, str]:
    """The embedded default on ``home``, whatever GATEWAY_* the caller's environment holds."""
    return {
        "GATEWAY_DATA_DIR": str(home / "data"),
        "GATEWAY_KEYS_DIR": str(home / "keys"),
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "GATEWAY_DATABASE_URL": "",
        "GATEWAY_BROKER_URL": "",
    }


def _healthy(base: str) -> bool:
    try:
        return requests.get(f"{base}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@contextmanager
def log_to(path: Path) -> Iterator[None]:
    """Log to ``path`` at INFO; the terminal keeps only warnings, so the progress bar stays readable."""
    root = logging.getLogger()
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    earlier = [(h, h.level) for h in root.handlers]
    for existing, _ in earlier:
        existing.setLevel(max(existing.level, logging.WARNING))
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()
        root.setLevel(level)
        for existing, previous in earlier:
            existing.setLevel(previous)
