"""The embedded default served by two worker processes on one SQLite file (``GATEWAY_WORKERS=2``).

Both processes run the intake's group commit, the in-process delivery and the sweep (the audit
sequencer among its tasks) on the same database, taking turns at its transactions
(``gateway.store.db.DatabaseLock``). Signed registrations sent at once over many connections must
all be accepted, each stored once with its receipt kept, every acceptance at its own place in one
audit log that ``gateway audit verify`` finds whole.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import pytest
import requests

from gateway.sdk.envelope import wrap
from gateway.sdk.signing import sign_envelope_bytes
from gateway.settings import PROJECT_ROOT
from tests.bench_modules import load_bench_module
from tests.conftest import credentials
from tests.serving import served_process
from tests.test_cli_send import gateway

pytestmark = pytest.mark.slow  # serves the gateway in processes of its own
MESSAGES = 48


def _envelopes_module() -> ModuleType:
    return load_bench_module("intake/envelopes.py")


def test_two_embedded_workers_accept_concurrent_messages_into_one_consistent_log(
    template_home: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    shutil.copytree(template_home, home)
    envelopes = _envelopes_module()
    routes = envelopes.load_traffic(PROJECT_ROOT / "bench" / "intake" / "traffic.json", PROJECT_ROOT / "examples")
    route = routes[0]  # a destination registration, here each about a graduate of its own
    sender = credentials(home / "keys", route.sender)
    bodies = [
        sign_envelope_bytes(
            wrap(
                envelopes.about(route.document, graduate),
                sender=route.sender,
                recipient=route.recipient,
                service=route.service,
            ),
            sender.key,
            sender.certificate,
        )
        for graduate in range(1, MESSAGES + 1)
    ]

    def send(body: bytes) -> tuple[int, bytes]:
        # a connection of its own each: the kernel spreads new connections over the two workers
        answer = requests.post(
            f"{base}/soap", data=body, headers={"Content-Type": "text/xml; charset=utf-8"}, timeout=30
        )
        return answer.status_code, answer.content

    with served_process(home, {"GATEWAY_WORKERS": "2"}) as (base, arbiter):
        workers = Path(f"/proc/{arbiter.pid}/task/{arbiter.pid}/children")
        deadline = time.monotonic() + 20  # /healthz answers once the first worker is up
        while workers.exists() and len(workers.read_text().split()) < 2:
            assert time.monotonic() < deadline, "gunicorn did not start two worker processes"
            time.sleep(0.1)
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(send, bodies))
        time.sleep(1)  # the receipts' writes end before the answers; the sweep's sequencer runs meanwhile
    banner = (home / "serve.log").read_text()
    assert "in-process worker and sweep in each of the 2 worker processes" in banner
    assert "2 worker processes take turns at its transactions" in banner
    assert "rate limits     counted together by the 2 worker processes in " in banner
    refused = [content[:300] for status, content in answers if status != 200 or b"Fault>" in content]
    assert not refused, refused
    with sqlite3.connect(home / "data" / "gateway.db") as database:
        stored, kept = database.execute("SELECT count(*), count(receipt) FROM messages").fetchone()
        indexes = [row[0] for row in database.execute("SELECT leaf_index FROM audit_entries ORDER BY leaf_index")]
    assert (stored, kept) == (MESSAGES, MESSAGES)
    assert indexes == list(range(len(indexes))), "the two processes gave out a leaf index twice, or skipped one"
    verified = gateway(home, "audit", "verify", "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["ok"]


def _sign_in(base: str, password: str) -> int:
    """One staff sign-in over a connection of its own (so the two workers share the attempts)."""
    with requests.Session() as browser:
        page = browser.get(f"{base}/staff/sign-in", timeout=30)
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text)
        assert token, "no CSRF token on the sign-in page"
        answer = browser.post(
            f"{base}/staff/sign-in",
            data={"username": "ada", "password": password, "csrf_token": token.group(1)},
            allow_redirects=False,
            timeout=30,
        )
        return answer.status_code


def test_two_embedded_workers_count_sign_in_failures_together(template_home: Path, tmp_path: Path) -> None:
    """Each worker counting alone would allow about twice the limit: the counts are shared."""
    home = tmp_path / "home"
    shutil.copytree(template_home, home)
    added = subprocess.run(
        [sys.executable, "-m", "gateway", "users", "add", "ada", "--role", "auditor", "--password-stdin"],
        input="the-right-password-1\n",
        capture_output=True,
        text=True,
        env={**os.environ, "GATEWAY_DATA_DIR": str(home / "data"), "GATEWAY_KEYS_DIR": str(home / "keys")},
    )
    assert added.returncode == 0, added.stderr
    limits = {"GATEWAY_WORKERS": "2", "GATEWAY_SIGN_IN_RATE_LIMIT": "4 per hour"}
    with served_process(home, limits) as (base, _arbiter):
        codes = [_sign_in(base, "a-wrong-password-1") for _ in range(8)]
    assert codes == [401] * 4 + [429] * 4, codes
    assert (home / "data" / "rate-limits.db").exists()
