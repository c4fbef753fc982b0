"""``/healthz`` (liveness, no dependency touched) and ``/readyz`` (each named check, with its reason)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

from gateway.audit.entries import AuditEvent
from gateway.audit.log import record
from gateway.clock import FixedClock
from gateway.settings import Settings
from gateway.store.db import transaction
from gateway.web import health
from gateway.web.app import create_app
from tests.conftest import REDIS_URL, require


def ready(app: Flask) -> tuple[int, dict[str, Any]]:
    response = app.test_client().get("/readyz")
    assert response.json is not None
    return response.status_code, response.json


def integrated(app: Flask) -> Flask:
    """``app`` after its sequencer took in what waits (the template home's entries are as old as the test run)."""
    app.extensions["gateway"].sequencer.run_once()
    return app


@pytest.fixture
def statements(app: Flask) -> Iterator[list[str]]:
    """Every SQL statement ``app`` runs from now on."""
    seen: list[str] = []
    engine = app.extensions["gateway"].engine

    def note(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", note)
    yield seen
    event.remove(engine, "before_cursor_execute", note)


def test_healthz_answers_without_touching_anything(client: FlaskClient, statements: list[str]) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json is not None and response.json["status"] == "ok"
    assert statements == []  # liveness: the process answers, whatever its dependencies do


def test_readyz_on_the_embedded_default(app: Flask) -> None:
    status, body = ready(integrated(app))
    assert (status, body["status"], body["reasons"]) == (200, "ready", [])
    assert sorted(body["checks"]) == sorted(name for name, _ in health.READINESS_CHECKS)
    assert body["checks"]["delivery_queue"] == {"ok": True, "broker": "StubBroker"}
    assert body["checks"]["audit_sequencer"]["pending"] == 0


def test_readyz_costs_a_few_bounded_statements(app: Flask, statements: list[str]) -> None:
    ready(app)
    statements.clear()
    ready(app)
    assert len(statements) <= 10, statements
    reads = [s for s in statements if s.startswith("SELECT") and "audit_entries" in s]
    assert reads and all("LIMIT" in s for s in reads)  # never a scan of the log


def test_readyz_not_ready_without_a_schema(settings: Settings, tmp_path: Path) -> None:
    app = create_app(settings.with_overrides(database_url=f"sqlite:///{tmp_path / 'empty.db'}"))
    status, body = ready(app)
    assert status == 503 and body["checks"]["database"]["ok"] is False
    assert "run `gateway init`" in body["checks"]["database"]["reason"]


def test_readyz_fails_on_a_read_only_database(settings: Settings, tmp_path: Path) -> None:
    database = tmp_path / "read-only.db"
    shutil.copy(settings.data_dir / "gateway.db", database)
    database.chmod(0o444)  # and, since tests may run as root, SQLite is told to open it read-only too
    app = create_app(settings.with_overrides(database_url=f"sqlite:///file:{database}?mode=ro&uri=true"))
    status, body = ready(app)  # a read-only store cannot integrate: other checks may fail too
    assert status == 503 and body["status"] == "not ready"
    assert body["checks"]["database"]["ok"] is True  # it answers, at the newest revision
    writable = body["checks"]["database_writable"]
    assert writable["ok"] is False and "readonly" in writable["reason"]
    assert any(r.startswith("database_writable: ") for r in body["reasons"])
    app.extensions["gateway"].engine.dispose()


def test_readyz_fails_when_audit_entries_wait_too_long(settings: Settings) -> None:
    clock = FixedClock(datetime.now(UTC))
    app = create_app(settings.with_overrides(ready_audit_lag_seconds=60), clock)
    context = app.extensions["gateway"]
    context.sequencer.run_once()
    with transaction(context.sessions) as session:
        record(session, AuditEvent(kind="test.entry", at=clock.now(), facts={"n": 1}))
    status, body = ready(app)
    assert status == 200 and body["checks"]["audit_sequencer"] == {"ok": True, "pending": 1, "oldest_seconds": 0.0}
    clock.set(clock.now() + timedelta(seconds=61))
    status, body = ready(app)
    assert status == 503
    reason = body["checks"]["audit_sequencer"]["reason"]
    assert reason.startswith("1 audit entries wait to be integrated, the oldest for 61 s (limit 60 s)")
    context.sequencer.run_once()
    assert ready(app)[0] == 200
    context.engine.dispose()


def test_the_sequencer_check_can_be_turned_off(settings: Settings) -> None:
    clock = FixedClock(datetime.now(UTC) + timedelta(days=1))  # every entry of the template home is a day old
    app = create_app(settings.with_overrides(ready_audit_lag_seconds=0), clock)
    assert ready(app)[1]["checks"]["audit_sequencer"]["ok"] is True
    app.extensions["gateway"].engine.dispose()


def test_readyz_with_redis_broker(settings: Settings) -> None:
    require("Redis", lambda: redis.Redis.from_url(REDIS_URL).ping())
    app = integrated(create_app(settings.with_overrides(broker_url=REDIS_URL, rate_limit_storage=REDIS_URL)))
    status, body = ready(app)
    assert status == 200, body
    assert body["checks"]["delivery_queue"] == {"ok": True, "broker": "RedisBroker"}
    assert body["checks"]["rate_limit_storage"] == {"ok": True, "storage": "RedisStorage"}


def test_readyz_with_unreachable_redis(settings: Settings) -> None:
    app = integrated(
        create_app(
            settings.with_overrides(broker_url="redis://127.0.0.1:1/0", rate_limit_storage="redis://127.0.0.1:1/1")
        )
    )
    status, body = ready(app)
    assert status == 503
    assert body["checks"]["delivery_queue"]["ok"] is False
    assert "ConnectionError" in body["checks"]["delivery_queue"]["reason"]
    storage = body["checks"]["rate_limit_storage"]
    assert storage == {"ok": False, "reason": "the rate limit storage (RedisStorage) does not answer"}
    assert {r.split(":")[0] for r in body["reasons"]} == {"delivery_queue", "rate_limit_storage"}


def test_a_check_added_to_the_list_is_run_and_named(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    def stopped_sequencer(_context: object) -> dict[str, object]:
        raise health.NotReady("the sequencer stopped at entry 41: its leaf hash does not match")

    monkeypatch.setattr(health, "READINESS_CHECKS", [*health.READINESS_CHECKS, ("audit_chain", stopped_sequencer)])
    status, body = ready(integrated(app))
    assert status == 503
    assert body["reasons"] == ["audit_chain: the sequencer stopped at entry 41: its leaf hash does not match"]
