"""Start ``gateway serve`` as a real process for a test, and stop it afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.conftest import free_port


def add_staff_user(home: Path, username: str, role: str, password: str) -> None:
    """``gateway users add`` on ``home``, as an operator runs it (before the gateway is served)."""
    env = {**os.environ, "GATEWAY_DATA_DIR": str(home / "data"), "GATEWAY_KEYS_DIR": str(home / "keys")}
    subprocess.run(
        [sys.executable, "-m", "gateway", "users", "add", username, "--role", role, "--password-stdin"],
        input=password + "\n",
        text=True,
        check=True,
        capture_output=True,
        env=env,
    )


@contextmanager
def served_gateway(home: Path, extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """``gateway serve`` on a free loopback port for the gateway home ``home``; yields the base URL."""
    with served_process(home, extra_env) as (base, _process):
        yield base


@contextmanager
def served_process(
    home: Path, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """As :func:`served_gateway`, and the ``gateway serve`` process (gunicorn's arbiter) too."""
    port = free_port()
    env = {
        **os.environ,
        "GATEWAY_DATA_DIR": str(home / "data"),
        "GATEWAY_KEYS_DIR": str(home / "keys"),
        "GATEWAY_PORT": str(port),
        **(extra_env or {}),
    }
    log = (home / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gateway serve exited: {(home / 'serve.log').read_text()[-2000:]}")
            try:
                if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("gateway serve did not answer /healthz within 30 s")
            time.sleep(0.1)
        yield base, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
