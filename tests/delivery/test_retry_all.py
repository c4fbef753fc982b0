"""``gateway deliveries retry --all`` (issue 14, item 5): every dead letter retried in one transaction,
its push deliveries queued on Redis in batches, by recipient and by time, purged envelopes left."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner, Result
from dramatiq.brokers.redis import RedisBroker
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from gateway.cli import deliveries as deliveries_cli
from gateway.cli import main
from gateway.delivery.service import QUEUE, start_worker
from gateway.messages.models import Delivery, Message
from gateway.store.db import transaction
from tests.conftest import EDUCATION_DEPARTMENT, REDIS_URL, UNIVERSITY, Signer, require
from tests.delivery.recipients import RecordingRecipient
from tests.delivery.test_push import anchors, deliveries, recipient  # noqa: F401
from tests.domain.helpers import send

MESSAGES = 12


def cli(home: Path, *args: str, broker_url: str | None = None) -> Result:
    env = {"GATEWAY_DATA_DIR": str(home / "data"), "GATEWAY_KEYS_DIR": str(home / "keys")}
    if broker_url:
        env["GATEWAY_BROKER_URL"] = broker_url
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def dead_letters(app: Flask, client: FlaskClient, sign: Signer) -> list[Delivery]:
    """MESSAGES dead letters to the (push) education department: the first three dead-lettered two
    days ago, the fourth's envelope purged."""
    for _ in range(MESSAGES):
        code, detail = send(client, sign, "destination-registration", UNIVERSITY, EDUCATION_DEPARTMENT)
        assert code is None, detail
    now = datetime.now(UTC)
    with transaction(app.extensions["gateway"].sessions) as session:
        session.execute(update(Delivery).values(status="failed", attempts=8, updated_at=now, last_error="timeout"))
        ids = [d.id for d in deliveries(app)]
        session.execute(update(Delivery).where(Delivery.id.in_(ids[:3])).values(updated_at=now - timedelta(days=2)))
        purged = session.get(Delivery, ids[3])
        assert purged is not None
        session.execute(update(Message).where(Message.id == purged.message_pk).values(payload_purged_at=now))
    return deliveries(app)


@pytest.fixture
def redis_broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisBroker]:
    """The command's broker, on a Redis namespace of the test's own."""
    require("Redis", lambda: redis.Redis.from_url(REDIS_URL).ping())
    broker = RedisBroker(url=REDIS_URL, namespace=f"test-retry-{uuid.uuid4().hex[:8]}")  # type: ignore[no-untyped-call]
    monkeypatch.setattr(deliveries_cli, "make_broker", lambda _settings: broker)
    try:
        yield broker
    finally:
        broker.flush_all()  # type: ignore[no-untyped-call]
        broker.client.close()


def test_every_dead_letter_since_a_time_is_queued_on_redis_at_once(
    app: Flask,
    client: FlaskClient,
    sign: Signer,
    home: Path,
    recipient: RecordingRecipient,  # noqa: F811
    redis_broker: RedisBroker,
) -> None:
    dead = dead_letters(app, client, sign)
    done = cli(home, "deliveries", "retry", "--all", "--since", "1d", "--json", broker_url=REDIS_URL)
    assert done.exit_code == 0, done.output
    outcome = json.loads(done.output)
    wanted = MESSAGES - 3 - 1
    assert (outcome["retried"], outcome["push"], outcome["queued_on_broker"]) == (wanted, wanted, wanted)
    assert (outcome["skipped_purged"], outcome["left_to_the_sweep"], outcome["broker_error"]) == (1, 0, None)
    after = {d.id: d for d in deliveries(app)}
    retried = [d.id for d in dead[4:]]
    assert {(after[i].status, after[i].attempts) for i in retried} == {("queued", 0)}
    assert {after[d.id].status for d in dead[:4]} == {"failed"}
    assert redis_broker.client.llen(f"{redis_broker.namespace}:{QUEUE}") == wanted
    # What a worker on that Redis then does: deliver each of them once; the sweep sends nothing more.
    worker_broker = RedisBroker(url=REDIS_URL, namespace=redis_broker.namespace)  # type: ignore[no-untyped-call]
    service = dataclasses.replace(app.extensions["gateway"].delivery, broker=worker_broker)
    worker = start_worker(service, threads=2, per_recipient=2)  # one recipient may use both threads
    try:
        redis_broker.join(QUEUE, timeout=60_000)
        worker.join()
    finally:
        worker.stop()
        worker_broker.client.close()
    final = {d.id: d for d in deliveries(app)}
    assert {final[i].status for i in retried} == {"delivered"}
    assert len(recipient.received) == wanted


def test_on_the_embedded_broker_the_sweep_sends_them_and_the_text_says_what_happened(
    app: Flask,
    client: FlaskClient,
    sign: Signer,
    home: Path,
    recipient: RecordingRecipient,  # noqa: F811
) -> None:
    dead_letters(app, client, sign)
    done = cli(home, "deliveries", "retry", "--all", "--recipient", EDUCATION_DEPARTMENT.lower())
    assert done.exit_code == 0, done.output
    assert f"{MESSAGES - 1} dead letters retried with a fresh attempt count: {MESSAGES - 1} push, 0 pull" in done.output
    assert "1 left failed: their envelopes were purged" in done.output
    assert "the next sweep of `gateway serve` sends the push deliveries" in done.output
    assert app.extensions["gateway"].delivery.sweep() == MESSAGES - 1
    again = cli(home, "deliveries", "retry", "--all", "--recipient", UNIVERSITY)
    assert again.exit_code == 0 and "0 dead letters retried" in again.output


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        ((), "give either DELIVERY_ID or --all"),
        (("1", "--all"), "give either DELIVERY_ID or --all"),
        (("1", "--since", "2h"), "go with --all"),
        (("--all", "--since", "yesterday"), "neither a date"),
    ],
)
def test_usage_errors_are_said_plainly(home: Path, args: tuple[str, ...], complaint: str) -> None:
    done = cli(home, "deliveries", "retry", *args)
    assert done.exit_code == 2 and complaint in done.output, done.output
    assert "Traceback" not in done.output
