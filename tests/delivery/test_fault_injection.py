"""Nothing accepted is lost, nothing is handled twice: delivery under injected faults (issue 5, item 7).

Each test runs a production-shaped exchange of real processes it starts and stops itself:
PostgreSQL (a fresh schema), a ``redis-server`` on a free port, ``gateway serve``, one or more
``gateway worker --sweep-interval 1`` and a push recipient in a thread (``faults_exchange``). The
recovery settings are short (grace 2 s, claim lease 5 s, retry base 1 s). It then breaks one
part while messages are accepted and delivered, repairs it, and checks the promise of the outbox:
every accepted message is delivered, the recipient handled each one exactly once, and the
deliveries table says ``delivered`` for each of them and for nothing else.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from gateway.store.db import connect
from tests.conftest import require
from tests.delivery.faults_exchange import Exchange, prepare_database, signed_envelopes
from tests.delivery.faults_processes import Processes, wait_until
from tests.delivery.faults_recipient import FaultyRecipient, serve_faulty_recipient

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


def _redis_server() -> str:
    found = shutil.which("redis-server")
    if found is None:
        raise FileNotFoundError("redis-server is not on PATH (apt-get install redis-server)")
    return found


@pytest.fixture
def exchange(template_home: Path, tmp_path: Path, postgres_url: str) -> Iterator[Exchange]:
    """PostgreSQL schema, redis-server and ``gateway serve`` running, the recipient in push mode; no worker yet."""
    require("redis-server", _redis_server)
    home = tmp_path / "home"
    shutil.copytree(template_home, home)
    logs = tmp_path / "logs"
    logs.mkdir()
    recipient = FaultyRecipient()
    processes = Processes(logs)
    engine = connect(postgres_url)
    try:
        with serve_faulty_recipient(recipient, (home / "keys" / "ca" / "ca.cert.pem",)) as endpoint:
            try:
                prepare_database(postgres_url, home / "keys", endpoint)
                exchange = Exchange(home, postgres_url, recipient, processes, engine)
                exchange.start_redis()
                exchange.start_gateway()
                yield exchange
            finally:
                processes.stop_all()  # before the recipient goes and the schema is dropped
    finally:
        engine.dispose()


def test_a_worker_killed_in_the_middle_of_deliveries(exchange: Exchange) -> None:
    recipient = exchange.recipient
    recipient.slow_seconds = 1.0
    recipient.switch("slow")
    exchange.start_worker("worker-1", threads=3)
    exchange.start_worker("worker-2", threads=3)
    exchange.send(signed_envelopes(exchange.home / "keys", 40))
    # Six handlers busy at once means both workers have all three threads in a delivery.
    wait_until(lambda: recipient.in_flight >= 6, 20, "both workers to have deliveries in flight", exchange.explain)
    exchange.processes.kill("worker-1")
    recipient.switch("accept")
    exchange.start_worker("worker-3", threads=3)
    exchange.wait_all_delivered(timeout=45)
    exchange.assert_exactly_once()
    # The killed worker's claims were taken over after the lease and delivered again; the recipient
    # recognised them (had it not been offered them again, this test would not test anything).
    assert recipient.duplicates >= 1, recipient.snapshot()


def test_b_redis_killed_and_restarted_loses_the_queue_but_not_a_message(exchange: Exchange) -> None:
    recipient = exchange.recipient
    recipient.slow_seconds = 0.3
    recipient.switch("slow")
    exchange.start_worker("worker", threads=2)
    keys = exchange.home / "keys"
    exchange.send(signed_envelopes(keys, 30))
    wait_until(
        lambda: sum(recipient.handled.values()) >= 2 and exchange.queued_on_broker() > 0,
        20,
        "deliveries to be running with more waiting on the broker",
        exchange.explain,
    )
    exchange.processes.kill("redis")
    # The intake does not need the broker: messages are accepted and wait in the outbox.
    while_down = signed_envelopes(keys, 10)
    exchange.send(while_down)
    rows = exchange.deliveries()
    assert {rows[m][0] for m in while_down} == {"accepted"}, exchange.explain()
    time.sleep(2)
    exchange.start_redis()  # empty: nothing was persisted
    recipient.switch("accept")
    exchange.wait_all_delivered(timeout=45)
    exchange.assert_exactly_once()


def _every_delivery(exchange: Exchange, *needles: str) -> bool:
    """True when every delivery's last error mentions one of ``needles`` (a failed attempt of that kind)."""
    rows = exchange.deliveries().values()
    return bool(rows) and all(any(n in (error or "") for n in needles) for _, _, error in rows)


def test_c_recipient_rejecting_failing_and_timing_out_then_recovering(exchange: Exchange) -> None:
    recipient = exchange.recipient
    recipient.late_seconds = 3.0  # the gateway waits 2 s (the recipient's push timeout)
    recipient.switch("reject")
    exchange.start_worker("worker")
    exchange.send(signed_envelopes(exchange.home / "keys", 10))
    # After three time-outs in a row the recipient's circuit opens and the others are deferred
    # (docs/delivery.md, fairness): "deferred:" is what the late mode leaves on those.
    late = ("Timeout", "timed out", "deferred: ")
    for mode, needles in (("reject", ("rejected",)), ("error", ("HTTP 500",)), ("late", late)):
        recipient.switch(mode)
        wait_until(
            lambda needles=needles: _every_delivery(exchange, *needles),
            20,
            f"every delivery to have failed once with the recipient in mode {mode!r}",
            exchange.explain,
        )
    assert set(exchange.statuses()) == {"waiting_for_retry"}, exchange.explain()
    recipient.switch("accept")
    exchange.wait_all_delivered(timeout=45)
    exchange.assert_exactly_once()
    # Those handled during the time-outs were offered again and recognised.
    assert recipient.duplicates >= 1, recipient.snapshot()
    assert all(attempts >= 3 for _, attempts, _ in exchange.deliveries().values()), exchange.explain()


def test_c_a_handler_slower_than_the_push_timeout_handles_each_message_once(exchange: Exchange) -> None:
    recipient = exchange.recipient
    recipient.slow_seconds = 6.0  # the gateway gives up after 2 s and tries again about 1 s later
    recipient.switch("slow")
    exchange.start_worker("worker", threads=4)
    exchange.send(signed_envelopes(exchange.home / "keys", 3))
    exchange.wait_all_delivered(timeout=30)
    wait_until(lambda: recipient.in_flight == 0, 15, "the slow handlers to finish", exchange.explain)
    exchange.assert_exactly_once()


@contextmanager
def sending(
    exchange: Exchange, envelopes: dict[str, bytes], concurrency: int = 4, pause: float = 0.0
) -> Iterator[None]:
    """``exchange.send(envelopes)`` in a thread while the block runs; its failure fails the test."""
    failures: list[BaseException] = []

    def send() -> None:
        try:
            exchange.send(envelopes, concurrency=concurrency, pause=pause)
        except BaseException as exc:
            failures.append(exc)

    sender = threading.Thread(target=send, name="sender")
    sender.start()
    try:
        yield
    finally:
        sender.join(timeout=90)
    assert not sender.is_alive(), "the sender did not finish"
    assert not failures, failures


def test_d_gateway_killed_and_restarted_between_and_during_sends(exchange: Exchange) -> None:
    keys = exchange.home / "keys"
    exchange.start_worker("worker")
    exchange.send(signed_envelopes(keys, 10))
    exchange.processes.kill("serve")  # between sends
    exchange.start_gateway()
    exchange.send(signed_envelopes(keys, 10))

    with sending(exchange, signed_envelopes(keys, 40), concurrency=4, pause=0.05):
        taken_before = exchange.taken
        wait_until(lambda: exchange.taken >= taken_before + 8, 20, "some messages accepted", exchange.explain)
        exchange.processes.kill("serve")  # during sends: requests in flight are cut off
        print("deliveries when the gateway was killed:", exchange.statuses())
        time.sleep(1)
        exchange.start_gateway()
    assert exchange.connection_errors > 0, "no request met the dead gateway: the kill came too late"

    # Killed between the commit and the enqueue, deterministically: with Redis frozen, the intake
    # commits each message and then waits for the broker, until the gateway is killed. Nothing but
    # the sweep knows of these messages; their senders send again and get the original receipts.
    stuck = signed_envelopes(keys, 3)
    exchange.processes.freeze("redis")
    try:
        with sending(exchange, stuck, concurrency=3):
            wait_until(
                lambda: {exchange.deliveries().get(m, ("missing",))[0] for m in stuck} == {"accepted"},
                10,
                "the messages to be stored while the broker does not answer",
                exchange.explain,
            )
            exchange.processes.kill("serve")
            exchange.processes.thaw("redis")
            exchange.start_gateway()
    finally:
        exchange.processes.thaw("redis")
    assert {exchange.outcomes[m] for m in stuck} == {"accepted"}, exchange.summary()
    assert set(stuck) <= exchange.resent_ids(), exchange.summary()  # each answered the second time
    exchange.wait_all_delivered(timeout=45)
    exchange.assert_exactly_once()
