"""``gateway worker`` on SIGTERM (issue 14, item 5): it finishes the deliveries in flight, gives the
broker back the messages it had fetched but not started, and exits 0 without a traceback; nothing
is left ``in_delivery`` for a lease to recover, nothing is offered twice."""

from __future__ import annotations

import signal
import time

import pytest

from tests.delivery.faults_exchange import Exchange, signed_envelopes
from tests.delivery.faults_processes import wait_until
from tests.delivery.test_fault_injection import exchange  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


def test_sigterm_finishes_the_deliveries_in_flight_and_exits_cleanly(exchange: Exchange) -> None:  # noqa: F811
    recipient = exchange.recipient
    recipient.slow_seconds = 1.5  # under the push timeout (2 s): each delivery succeeds, slowly
    recipient.switch("slow")
    worker = exchange.start_worker("worker", threads=3)
    exchange.send(signed_envelopes(exchange.home / "keys", 15))
    wait_until(lambda: recipient.in_flight >= 3, 20, "three deliveries in flight", exchange.explain)
    worker.process.send_signal(signal.SIGTERM)
    started = time.monotonic()
    code = worker.process.wait(timeout=30)
    took = time.monotonic() - started
    log = worker.log_tail(200)
    assert code == 0, log
    assert "Traceback" not in log, log
    assert "delivery worker stopped" in log, log
    statuses = exchange.statuses()
    # Those in flight were finished and recorded; the others wait (queued) for the next worker.
    assert "in_delivery" not in statuses, exchange.explain()
    assert statuses.get("delivered", 0) >= 3, exchange.explain()
    assert set(statuses) <= {"delivered", "queued"}, exchange.explain()
    assert took < 25, f"the worker took {took:.1f} s to stop"
    # The next worker delivers the rest from the broker (the stopped one gave its prefetch back).
    recipient.switch("accept")
    exchange.start_worker("worker-2", threads=3)
    exchange.wait_all_delivered(timeout=45)
    exchange.assert_exactly_once()
    assert recipient.duplicates == 0, recipient.snapshot()  # no delivery was cut off and sent again
