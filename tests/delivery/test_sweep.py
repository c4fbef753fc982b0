"""The sweep sends again only what the broker lost (issue 14, item 5): a backlog waiting in the
broker is left alone however long it waits; a message the broker lost is sent again, once."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import dramatiq
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from gateway.delivery.broker import message_key
from gateway.delivery.service import QUEUE, DeliveryService, start_worker
from gateway.messages.models import Delivery
from gateway.store.db import transaction
from tests.conftest import EDUCATION_DEPARTMENT, REDIS_URL, UNIVERSITY, Signer, require
from tests.delivery.recipients import RecordingRecipient
from tests.delivery.test_push import anchors, deliveries, recipient  # noqa: F401
from tests.domain.helpers import send

BACKLOG = 20


class CountSends(dramatiq.Middleware):
    def __init__(self) -> None:
        self.sent = 0

    def after_enqueue(self, broker: dramatiq.Broker, message: Any, delay: Any) -> None:
        self.sent += 1


@contextmanager
def delivery_service(app: Flask, kind: str) -> Iterator[DeliveryService]:
    """The app's delivery service, on its stub broker or on a Redis namespace of the test's own."""
    context = app.extensions["gateway"]
    if kind == "stub":
        yield context.delivery
        return
    require("Redis", lambda: redis.Redis.from_url(REDIS_URL).ping())
    broker = RedisBroker(url=REDIS_URL, namespace=f"test-sweep-{uuid.uuid4().hex[:8]}")  # type: ignore[no-untyped-call]
    service = dataclasses.replace(context.delivery, broker=broker)
    app.extensions["gateway"] = dataclasses.replace(context, broker=broker, delivery=service)  # the intake's too
    try:
        yield service
    finally:
        broker.flush_all()  # type: ignore[no-untyped-call]
        broker.client.close()


@pytest.fixture(params=["stub", "redis"])
def service(request: pytest.FixtureRequest, app: Flask) -> Iterator[DeliveryService]:
    with delivery_service(app, request.param) as found:
        yield found


@pytest.fixture
def redis_service(app: Flask) -> Iterator[DeliveryService]:
    with delivery_service(app, "redis") as found:
        yield found


def age_everything(service: DeliveryService, by: timedelta) -> None:
    """Every delivery as if it had been queued (and last looked at) ``by`` ago."""
    with transaction(service.sessions) as session:
        session.execute(update(Delivery).values(updated_at=datetime.now(UTC) - by))


def test_a_backlog_waiting_in_the_broker_is_not_sent_again(
    app: Flask,
    client: FlaskClient,
    sign: Signer,
    recipient: RecordingRecipient,  # noqa: F811
    service: DeliveryService,
) -> None:
    counter = CountSends()
    service.broker.add_middleware(counter)
    for _ in range(BACKLOG):
        code, detail = send(client, sign, "destination-registration", UNIVERSITY, EDUCATION_DEPARTMENT)
        assert code is None, detail
    assert counter.sent == BACKLOG
    assert {d.status for d in deliveries(app)} == {"queued"}
    # No worker runs: the backlog waits far past the grace period; sweep after sweep sends nothing.
    for _ in range(3):
        age_everything(service, timedelta(minutes=10))
        assert service.sweep() == 0
    assert counter.sent == BACKLOG
    # The broker loses two messages (say Redis restarted between): those two, and only those, go again.
    lost = deliveries(app)[:2]
    forget(service.broker, [message_key(d.id, d.enqueued_at) for d in lost if d.enqueued_at])
    age_everything(service, timedelta(minutes=10))
    assert service.sweep() == 2
    assert counter.sent == BACKLOG + 2
    age_everything(service, timedelta(minutes=10))
    assert service.sweep() == 0  # the two are held again, under their new keys
    worker = start_worker(service, threads=2, per_recipient=2)  # one recipient may use both threads
    try:
        service.broker.join(QUEUE, timeout=60_000)
        worker.join()
    finally:
        worker.stop()
    assert {d.status for d in deliveries(app)} == {"delivered"}
    assert len(recipient.received) == BACKLOG
    assert counter.sent == BACKLOG + 2


def forget(broker: dramatiq.Broker, keys: list[str]) -> None:
    """Take the broker messages ``keys`` out of the delivery queue, as a broker that lost them."""
    if isinstance(broker, RedisBroker):
        for key in keys:
            broker.client.lrem(f"{broker.namespace}:{QUEUE}", 0, key)
            broker.client.hdel(f"{broker.namespace}:{QUEUE}.msgs", key)
        return
    queue = broker.queues[QUEUE]  # type: ignore[attr-defined]
    kept = [data for data in list(queue.queue) if not any(key.encode() in data for key in keys)]
    with queue.mutex:
        queue.queue.clear()
        queue.queue.extend(kept)
        queue.unfinished_tasks = len(kept)


def test_a_message_fetched_by_a_worker_that_stopped_beating_is_sent_again(
    app: Flask,
    client: FlaskClient,
    sign: Signer,
    recipient: RecordingRecipient,  # noqa: F811  (push)
    redis_service: DeliveryService,
) -> None:
    service = redis_service
    broker = service.broker
    assert isinstance(broker, RedisBroker)
    for _ in range(3):
        code, detail = send(client, sign, "destination-registration", UNIVERSITY, EDUCATION_DEPARTMENT)
        assert code is None, detail
    first, second, _third = deliveries(app)
    # Two messages fetched (moved into workers' ack sets): one by a worker beating now, one by a
    # worker whose last heartbeat is older than the claim lease (killed).
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    for delivery, worker, beat_ms in ((first, "alive", now_ms), (second, "killed", now_ms - 600_000)):
        assert delivery.enqueued_at is not None
        key = message_key(delivery.id, delivery.enqueued_at)
        broker.client.lrem(f"{broker.namespace}:{QUEUE}", 0, key)
        broker.client.sadd(f"{broker.namespace}:__acks__.{worker}.{QUEUE}", key)
        broker.client.zadd(f"{broker.namespace}:__heartbeats__", {worker: beat_ms})
    age_everything(service, timedelta(minutes=10))
    assert service.sweep() == 1
    assert [d.status for d in deliveries(app)] == ["queued"] * 3
    assert deliveries(app)[1].enqueued_at != second.enqueued_at  # the killed worker's, under a new key
