"""The phases added for issue 13: latency at a fixed offered rate, fairness with a recipient that
times out, and the worker's memory after many messages.

- ``send_at_rate``: open loop. Message i is sent at ``start + i / rate`` by whichever of the
  connections is free; a sender behind schedule sends at once (the rate offered is then what the
  intake takes), so a slow gateway shows as latency, not as a lower offered rate.
- ``originate_slow``: messages the gateway itself originates (``AgreementResponse``, as it does for a
  graduate's answer) to a second push recipient that answers only after its push timeout, queued
  on the run's Redis before the fixed-rate phase is repeated: the healthy recipient's p99 beside
  the run without them is the fairness figure.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from lxml import etree
from processes import LOOPBACK
from sqlalchemy import func, select

from gateway.messages.models import Delivery
from gateway.registry.models import Participant
from gateway.settings import Settings
from gateway.store.db import connect, transaction
from gateway.web.app import create_app

SLOW_RECIPIENT = "12110105400000002L"  # a talent service agency of the demo participants


def send_at_rate(port: int, envelopes: Sequence[tuple[str, bytes]], rate: float, connections: int) -> dict[str, Any]:
    """POST envelope i at ``i / rate`` seconds after the start; the accepted ids and the refusals."""
    lock = threading.Lock()
    state = {"next": 0}
    failures: list[str] = []
    accepted: list[str] = []
    behind = {"max_s": 0.0}
    start = time.perf_counter() + 0.2

    def sender() -> None:
        connection = http.client.HTTPConnection(LOOPBACK, port, timeout=60)
        try:
            while True:
                with lock:
                    index = state["next"]
                    state["next"] += 1
                if index >= len(envelopes):
                    return
                due = start + index / rate
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                else:
                    with lock:
                        behind["max_s"] = max(behind["max_s"], -wait)
                message_id, envelope = envelopes[index]
                try:
                    connection.request("POST", "/soap", envelope, {"Content-Type": "text/xml; charset=utf-8"})
                    answer = connection.getresponse()
                    body = answer.read()
                except (OSError, http.client.HTTPException) as exc:
                    connection.close()
                    with lock:
                        failures.append(f"{message_id}: {type(exc).__name__}: {exc}")
                    continue
                with lock:
                    if answer.status != 200 or b":Fault>" in body:
                        failures.append(f"{message_id}: HTTP {answer.status} {body[:300]!r}")
                    else:
                        accepted.append(message_id)
        finally:
            connection.close()

    threads = [threading.Thread(target=sender) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    return {
        "sent": len(envelopes),
        "offered_per_s": rate,
        "failures": len(failures),
        "first_failure": failures[0] if failures else None,
        "seconds": seconds,
        "accepted_per_s": len(accepted) / seconds,
        "sender_behind_max_s": behind["max_s"],
        "accepted_ids": accepted,
    }


def originate_slow(env: dict[str, str], count: int) -> list[int]:
    """``count`` gateway-originated messages to the slow recipient, queued on the run's broker."""
    app = create_app(Settings.from_env(env))
    context = app.extensions["gateway"]
    try:
        ids: list[int] = []
        with transaction(context.sessions) as session:
            recipient = session.get(Participant, SLOW_RECIPIENT)
            assert recipient is not None
            now = datetime.now(UTC)
            for n in range(count):
                document = etree.fromstring(f'<note xmlns="urn:bench:fairness">{n}</note>')
                message = context.originator.send(session, document, "AgreementResponse", recipient, now)
                ids += [d.id for d in message.deliveries]
        context.delivery.enqueue(ids, dict.fromkeys(ids, SLOW_RECIPIENT))
        return ids
    finally:
        context.delivery.broker.close()
        context.engine.dispose()


def slow_states(database_url: str) -> dict[str, int]:
    """The slow recipient's deliveries by status, and how many attempts they cost in all."""
    engine = connect(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(Delivery.status, func.count(), func.sum(Delivery.attempts))
                .where(Delivery.recipient_id == SLOW_RECIPIENT)
                .group_by(Delivery.status)
            ).all()
        states = {str(status): int(n) for status, n, _ in rows}
        states["attempts"] = sum(int(a or 0) for _, _, a in rows)
        return states
    finally:
        engine.dispose()
