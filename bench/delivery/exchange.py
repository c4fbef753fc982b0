"""The exchange under test: the processes of one run and the gateway's set-up.

A push recipient (``recipient_app.py`` under gunicorn, one worker process), a redis-server of the
run's own on a free port, ``gateway serve`` (embedded, or on PostgreSQL and that Redis) and
``gateway worker``; all on 127.0.0.1, each stopped by :meth:`Exchange.close` however the run ends.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import processes
from processes import LOOPBACK, Process
from sqlalchemy import text, update
from traffic import RECIPIENT, ROOT, SIGNATURE_TTL

from gateway.registry.models import Participant
from gateway.store.db import connect

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


class Exchange:
    """Everything one run started, stopped by :meth:`close` however the run ends."""

    def __init__(self, options: argparse.Namespace, workdir: Path) -> None:
        self.options = options
        self.workdir = workdir
        self.keys_dir = workdir / "keys"
        self.started: list[Process] = []
        self.redis_port = processes.free_port()

    def close(self) -> None:
        for process in reversed(self.started):
            try:
                processes.stop(process)
            except Exception as exc:  # keep stopping the others
                print(f"could not stop {process.name} (pid {process.pid}): {exc}", file=sys.stderr)

    def start(self, name: str, argv: Sequence[str], env: dict[str, str]) -> Process:
        process = processes.start(name, argv, env, self.workdir / f"{name}-{len(self.started)}.log", cwd=ROOT)
        self.started.append(process)
        return process

    @property
    def workers(self) -> list[Process]:
        """The ``gateway worker`` processes running now."""
        return [process for process in self.started if process.name == "worker"]

    def stop(self, process: Process) -> None:
        processes.stop(process)
        self.started.remove(process)

    def env(self, database_url: str | None, port: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        env.update(
            GATEWAY_KEYS_DIR=str(self.keys_dir),
            GATEWAY_HOST=LOOPBACK,
            GATEWAY_PORT=str(port),
            GATEWAY_TIMESTAMP_MAX_AGE=str(int(SIGNATURE_TTL.total_seconds())),
        )
        if database_url is None:
            env["GATEWAY_DATA_DIR"] = str(self.workdir / "embedded")
        else:
            env.update(
                GATEWAY_DATA_DIR=str(self.workdir / "production"),
                GATEWAY_DATABASE_URL=database_url,
                GATEWAY_BROKER_URL=f"redis://{LOOPBACK}:{self.redis_port}/0",
            )
        return env

    def start_recipient(self, slow_seconds: float = 0.0) -> str:
        """The push recipient (or, with ``slow_seconds``, a second one that answers that late);
        returns its SOAP endpoint."""
        port = processes.free_port()
        env = {**os.environ, "BENCH_CA_FILE": str(self.keys_dir / "ca" / "ca.cert.pem")}
        if slow_seconds:
            env["BENCH_SLOW_SECONDS"] = str(slow_seconds)
        process = self.start(
            "slow-recipient" if slow_seconds else "recipient",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--bind",
                f"{LOOPBACK}:{port}",
                "--workers",
                "1",
                "--worker-class",
                "gthread",
                "--threads",
                "16",
                "--timeout",
                "60",
                "--pythonpath",
                str(HERE),
                "recipient_app:create_app()",
            ],
            env,
        )
        if not slow_seconds:
            self.recipient = process
        base = f"http://{LOOPBACK}:{port}"
        processes.wait_for(process, processes.answers(f"{base}/healthz"), "answer on /healthz")
        if not slow_seconds:
            self.recipient_base = base
        return f"{base}/soap"

    def recipient_count(self) -> int:
        with urllib.request.urlopen(f"{self.recipient_base}/count", timeout=5) as answer:
            return int(json.loads(answer.read())["count"])

    def start_redis(self) -> None:
        process = self.start(
            "redis",
            ["redis-server", "--port", str(self.redis_port), "--bind", LOOPBACK, "--save", "", "--appendonly", "no"],
            dict(os.environ),
        )
        processes.wait_for(process, lambda: "Ready to accept connections" in process.log_tail(50), "readiness line")

    def serve(self, env: dict[str, str]) -> Process:
        process = self.start("serve", [str(BIN / "gateway"), "serve"], env)
        base = f"http://{LOOPBACK}:{env['GATEWAY_PORT']}"
        processes.wait_for(process, processes.answers(f"{base}/healthz"), "answer on /healthz")
        return process

    def worker(self, env: dict[str, str], prefetch: int) -> Process:
        argv = [str(BIN / "gateway"), "worker", "--threads", str(self.options.threads)]
        if prefetch:
            argv += ["--prefetch", str(prefetch)]
        if getattr(self.options, "per_recipient", 0):
            argv += ["--per-recipient", str(self.options.per_recipient)]
        process = self.start("worker", argv, env)
        processes.wait_for(process, lambda: "delivery worker:" in process.log_tail(200), "start-up line")
        return process


def gateway_cli(env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [str(BIN / "gateway"), *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=180, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"gateway {' '.join(args)} failed:\n{done.stdout}{done.stderr}")


def push_to(database_url: str, endpoint: str, recipient: str = RECIPIENT, timeout: int = 30) -> None:
    engine = connect(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                update(Participant)
                .where(Participant.id == recipient)
                .values(
                    delivery_mode="push", endpoint_url=endpoint, push_timeout_seconds=timeout, max_delivery_attempts=8
                )
            )
    finally:
        engine.dispose()


@contextmanager
def scratch_schema(postgres_url: str) -> Iterator[str]:
    """A fresh schema in ``postgres_url``'s database (its URL), dropped afterwards."""
    schema = f"bench_delivery_{secrets.token_hex(4)}"
    engine = connect(postgres_url)
    try:
        with engine.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        separator = "&" if "?" in postgres_url else "?"
        yield f"{postgres_url}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        with engine.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()
