"""``gateway backup``: an online copy of the SQLite database, taken while messages are accepted, and
a restore from it after which ``gateway audit verify`` holds and every stored envelope decrypts."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from gateway.messages.keyring import PayloadKeyRing
from gateway.messages.models import Message
from gateway.messages.payloads import PayloadCipher
from tests.delivery.faults_exchange import signed_envelopes
from tests.serving import served_gateway


def gateway(home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(GATEWAY_DATA_DIR=str(home / "data"), GATEWAY_KEYS_DIR=str(home / "keys"), **extra)
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def stored_messages(database: Path) -> int:
    with sqlite3.connect(database) as connection:
        return int(connection.execute("SELECT count(*) FROM messages").fetchone()[0])


@pytest.mark.slow
def test_a_backup_taken_under_traffic_restores_verifies_and_decrypts(home: Path, tmp_path: Path) -> None:
    envelopes = list(signed_envelopes(home / "keys", 40).values())
    backup = tmp_path / "backup" / "gateway.db"
    backup.parent.mkdir()
    taken: list[int] = []
    with served_gateway(home) as base:

        def send() -> None:
            for envelope in envelopes:
                answer = requests.post(f"{base}/soap", data=envelope, headers={"Content-Type": "text/xml"}, timeout=30)
                assert answer.status_code == 200, answer.text[:300]
                taken.append(1)

        sender = threading.Thread(target=send, name="sender")
        sender.start()
        while len(taken) < 10 and sender.is_alive():
            threading.Event().wait(0.05)
        before = len(taken)
        result = gateway(home, "backup", str(backup))  # while the sender goes on
        sender.join(timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "integrity check ok" in result.stdout
    assert len(taken) == len(envelopes)
    in_backup = stored_messages(backup)
    assert before <= in_backup <= len(envelopes)
    assert not backup.with_name("gateway.db-wal").exists()  # one self-contained file

    # Restore on another machine: the key folder from its own backup, the database from this one.
    restored = tmp_path / "restored"
    shutil.copytree(home / "keys", restored / "keys")
    (restored / "data").mkdir()
    shutil.copy(backup, restored / "data" / "gateway.db")
    verified = gateway(restored, "audit", "verify", "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    report = json.loads(verified.stdout)
    assert report["ok"] and report["entries"] >= in_backup, report

    engine = create_engine(f"sqlite:///{restored / 'data' / 'gateway.db'}")
    try:
        cipher = PayloadCipher(PayloadKeyRing(restored / "keys" / "secrets" / "payload-keys"))
        with Session(engine) as session:
            messages = session.scalars(select(Message)).all()
            assert len(messages) == in_backup
            for message in messages:
                envelope = cipher.open_envelope(message)
                assert message.message_id.encode() in envelope and envelope in envelopes
    finally:
        engine.dispose()


def test_backup_refuses_to_overwrite_and_explains_postgresql(home: Path, tmp_path: Path) -> None:
    target = tmp_path / "gateway.db"
    first = gateway(home, "backup", str(target))
    assert first.returncode == 0, first.stderr
    again = gateway(home, "backup", str(target))
    assert again.returncode == 1 and "--force" in again.stderr and "Traceback" not in again.stderr
    assert gateway(home, "backup", str(target), "--force").returncode == 0
    itself = gateway(home, "backup", str(home / "data" / "gateway.db"), "--force")
    assert itself.returncode == 1 and "must not replace the database" in itself.stderr
    postgres = gateway(home, "backup", str(tmp_path / "pg.db"), GATEWAY_DATABASE_URL="postgresql://gateway@db/gateway")
    assert postgres.returncode == 1 and "pg_dump" in postgres.stderr and "Traceback" not in postgres.stderr
