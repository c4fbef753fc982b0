"""The dramatiq broker: Redis in production, an in-process stub broker on the embedded default.

Besides choosing the broker, this module knows two things about how delivery uses it:

- **Broker message ids name the delivery and the moment it was queued** (``gw.<delivery id>.<µs>``,
  the same moment the outbox stores as ``enqueued_at``). So the sweep can ask the broker whether a
  delivery that has been ``queued`` for long is still waiting there (one ``HMGET`` on dramatiq's
  message hash, which holds a message from enqueue until its ack, fetched or not) instead of
  sending it again: in a backlog, every queued delivery is still waiting.
- **Sends go out in batches**: on Redis, one pipeline (one round trip) runs dramatiq's own
  ``enqueue`` script for every message of the batch.
- **A message names the delivery's recipient** when the sender knows it (``args``: the delivery
  id, then the recipient's id), so that a worker holding that recipient back defers the delivery
  without asking the database whom it goes to. A message with the id alone (from ``gateway
  deliveries retry --all``, or queued by an older version) is delivered all the same.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import current_millis

from gateway.errors import ConfigurationError
from gateway.settings import EMBEDDED_BROKER, Settings

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
KEY_OPTION = "redis_message_id"  # dramatiq's own option: the Redis consumer acks by it


def make_broker(settings: Settings) -> dramatiq.Broker:
    """The broker ``settings.broker_url`` names (``stub://`` or ``redis://...``)."""
    url = settings.broker_url
    if url == EMBEDDED_BROKER:
        return StubBroker()
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisBroker(url=url)  # type: ignore[no-untyped-call]
    raise ConfigurationError(f"GATEWAY_BROKER_URL must be stub:// or a redis:// URL, not {url!r}")


def ping(broker: dramatiq.Broker) -> None:
    """Raise if the broker cannot be reached (the stub broker always can)."""
    if isinstance(broker, RedisBroker):
        broker.client.ping()


def message_key(delivery_id: int, queued_at: datetime) -> str:
    """The broker message id of ``delivery_id`` queued at ``queued_at`` (microseconds, as stored)."""
    return f"gw.{delivery_id}.{(queued_at - _EPOCH) // _MICROSECOND}"


def send_batch(
    actor: dramatiq.Actor[..., None],
    delivery_ids: Sequence[int],
    queued_at: datetime,
    recipients: Mapping[int, str] | None = None,
) -> None:
    """Put one message per delivery on ``actor``'s queue, keyed by :func:`message_key`, naming
    the delivery's recipient when ``recipients`` has it.

    On Redis the whole batch is one pipeline; raises what the broker raises (nothing is marked).
    """
    if not delivery_ids:
        return
    broker = actor.broker
    known = recipients or {}
    messages = [
        actor.message_with_options(
            args=(delivery_id, known[delivery_id]) if delivery_id in known else (delivery_id,),
            redis_message_id=message_key(delivery_id, queued_at),
        )
        for delivery_id in delivery_ids
    ]
    if not isinstance(broker, RedisBroker):
        for message in messages:
            broker.enqueue(message)
        return
    # dramatiq's RedisBroker.enqueue, minus its random id, for many messages in one round trip:
    # the dispatch script's arguments as RedisBroker._dispatch passes them (maintenance off).
    dispatch = broker.scripts["dispatch"]
    with broker.client.pipeline(transaction=False) as pipe:
        for message in messages:
            broker.emit_before("enqueue", message, None)
            args = [
                "enqueue",
                current_millis(),
                message.queue_name,
                broker.broker_id,
                broker.heartbeat_timeout,
                broker.dead_message_ttl,
                0,
                broker._max_unpack_size(),  # type: ignore[no-untyped-call]
                message.options[KEY_OPTION],
                message.encode(),
            ]
            dispatch(keys=[broker.namespace], args=args, client=pipe)
        pipe.execute()
    for message in messages:
        broker.emit_after("enqueue", message, None)


def beat(broker: dramatiq.Broker) -> None:
    """Tell the broker this process is alive (dramatiq's own heartbeat, refreshed by every sweep).

    dramatiq beats only when a consumer talks to Redis; a worker whose threads all wait on slow
    recipients does not, and :func:`still_held` would take its fetched messages for a dead worker's.
    """
    if isinstance(broker, RedisBroker):
        broker.client.zadd(f"{broker.namespace}:__heartbeats__", {broker.broker_id: current_millis()})


def still_held(
    broker: dramatiq.Broker, queue: str, queued: Iterable[tuple[int, datetime]], dead_after: timedelta
) -> set[int]:
    """The deliveries among ``queued`` (id, queued at) whose broker message the broker still holds.

    Redis: waiting in the queue, or fetched by a worker that beat within ``dead_after``. A message
    fetched by a worker that stopped beating (killed) is not held: dramatiq would put it back only
    after its own heartbeat timeout, and only now and then. Stub: waiting in the in-process queue.
    """
    wanted = {message_key(delivery_id, at): delivery_id for delivery_id, at in queued}
    if not wanted:
        return set()
    if isinstance(broker, RedisBroker):
        return {wanted[key] for key in _held_by_redis(broker, queue, list(wanted), dead_after)}
    if isinstance(broker, StubBroker) and queue in broker.queues:
        held = set()
        for data in list(broker.queues[queue].queue):
            key = json.loads(data).get("options", {}).get(KEY_OPTION)
            if key in wanted:
                held.add(wanted[key])
        return held
    return set()


def _held_by_redis(broker: RedisBroker, queue: str, keys: list[str], dead_after: timedelta) -> set[str]:
    client = broker.client
    found = client.hmget(f"{broker.namespace}:{queue}.msgs", keys)
    present = [key for key, data in zip(keys, found, strict=True) if data is not None]
    if not present:
        return set()
    since = current_millis() - int(dead_after / timedelta(milliseconds=1))
    dead_workers = client.zrangebyscore(f"{broker.namespace}:__heartbeats__", 0, since)
    orphaned: set[str] = set()
    for worker in dead_workers:
        worker_id = worker.decode() if isinstance(worker, bytes) else str(worker)
        fetched = client.smismember(f"{broker.namespace}:__acks__.{worker_id}.{queue}", present)
        orphaned.update(key for key, flag in zip(present, fetched, strict=True) if flag)
    return set(present) - orphaned
