"""A gateway killed between a batch's commit and its answers loses nothing and answers honestly.

`gateway serve` (one worker, eight threads; the embedded default, then PostgreSQL, where the
receipts are signed after their batch's commit and kept in the next) takes messages from eight
senders at once, so its group commit runs them in batches, and is killed with SIGKILL in the
middle. Then, served again on the same home:

- every message answered with a receipt is stored, with that receipt kept byte for byte;
- every stored message sent again is answered with its receipt (the kept one, or one signed anew
  when the kill came between the batch's commit and the receipt's);
- every message neither answered nor stored is accepted when sent again: nothing is lost.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from lxml import etree
from sqlalchemy import select

from gateway.messages.models import Message
from gateway.sdk.envelope import wrap
from gateway.settings import Settings
from gateway.store.db import connect, session_factory, transaction
from tests.conftest import EDUCATION_DEPARTMENT, UNIVERSITY, Signer, free_port, receipt_bytes
from tests.domain.documents import new_graduate, registration

SOAP = {"Content-Type": "text/xml; charset=utf-8"}
GW = "{urn:gradex:gateway:1}"


@contextmanager
def serving(home: Path, database_url: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    env = {
        **os.environ,
        "GATEWAY_DATA_DIR": str(home / "data"),
        "GATEWAY_KEYS_DIR": str(home / "keys"),
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_PORT": str(port),
        "GATEWAY_THREADS": "8",
    }
    with (home / "serve.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (home / "serve.log").read_text()[-2000:]
            try:
                if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "gateway serve did not answer /healthz"
            time.sleep(0.1)
        yield base, process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def test_a_kill_between_commits_and_answers_loses_nothing(home: Path, store_settings: Settings, sign: Signer) -> None:
    settings = store_settings
    count = 160
    bodies: dict[str, bytes] = {}
    for n in range(count):
        message_id = str(uuid.uuid4())
        document = registration(new_graduate(), f"REG-KILL-{n}-{message_id[:8]}")
        envelope = wrap(
            document,
            sender=UNIVERSITY,
            recipient=EDUCATION_DEPARTMENT,
            service="DestinationRegistration",
            message_id=message_id,
        )
        bodies[message_id] = sign(envelope)
    ids = list(bodies)
    answered: dict[str, bytes] = {}  # message id -> the receipt answered
    lock = threading.Lock()

    with serving(home, settings.database_url) as (base, process):

        def sender(mine: list[str]) -> None:
            with requests.Session() as http:
                for message_id in mine:
                    try:
                        answer = http.post(f"{base}/soap", data=bodies[message_id], headers=SOAP, timeout=30)
                    except requests.RequestException:
                        return  # the gateway is gone
                    if answer.status_code == 200:
                        with lock:
                            answered[message_id] = receipt_bytes(answer.content)

        senders = [threading.Thread(target=sender, args=(ids[i::8],)) for i in range(8)]
        for thread in senders:
            thread.start()
        deadline = time.monotonic() + 120
        while len(answered) < count // 4:
            assert time.monotonic() < deadline, "too few messages were answered before the kill"
            time.sleep(0.005)
        os.killpg(process.pid, signal.SIGKILL)  # mid-traffic: batches committed, answers on their way
        process.wait()
        for thread in senders:
            thread.join(60)
    assert 0 < len(answered) < count

    engine = connect(settings.database_url)
    try:
        with transaction(session_factory(engine)) as session:
            rows = session.execute(select(Message.message_id, Message.receipt).where(Message.message_id.in_(ids)))
            kept: dict[str, bytes | None] = {message_id: receipt for message_id, receipt in rows}
    finally:
        engine.dispose()
    for message_id, receipt in answered.items():
        assert kept.get(message_id) == receipt, f"answered {message_id} is not stored with its receipt"
    stored_without_answer = set(kept) - set(answered)
    lost_in_flight = set(ids) - set(kept)

    with serving(home, settings.database_url) as (base, _process), requests.Session() as http:
        for message_id in ids:
            answer = http.post(f"{base}/soap", data=bodies[message_id], headers=SOAP, timeout=30)
            assert answer.status_code == 200, (message_id, answer.content[:500])
            receipt = receipt_bytes(answer.content)
            assert etree.fromstring(receipt).findtext(f"{GW}MessageId") == message_id
            if kept.get(message_id) is not None:
                assert receipt == kept[message_id]  # the original receipt, byte for byte
    # what the kill left: some stored and never answered, perhaps some not stored at all; all now answered
    assert len(answered) + len(stored_without_answer) + len(lost_in_flight) == count
