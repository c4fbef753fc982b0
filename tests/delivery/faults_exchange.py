"""A production-shaped exchange for fault-injection tests, every part of it a process the test owns.

PostgreSQL (a fresh schema, migrated, with the demo participants), a ``redis-server`` started on a
free port, ``gateway serve`` and ``gateway worker`` processes, and a push recipient served in a
thread. Messages are DestinationRegistrations from the university to the education
department, signed in advance with the demo keys, so that a message can be sent again byte for
byte after a crash (the gateway answers REPLAY for one it had already accepted).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import redis
import requests
from lxml import etree
from sqlalchemy import Engine, text, update

from gateway.bootstrap import demo_participant_inputs
from gateway.registry.models import Participant
from gateway.registry.services import add_participant, register_certificate
from gateway.sdk.envelope import wrap
from gateway.sdk.signing import sign_envelope_bytes
from gateway.store.db import connect, migrate, session_factory, transaction
from tests.conftest import EDUCATION_DEPARTMENT, UNIVERSITY, credentials, example, free_port
from tests.delivery.faults_processes import Processes, Started, wait_until
from tests.delivery.faults_recipient import FaultyRecipient

SERVICE = "DestinationRegistration"  # sent again and again, each one accepted (a correction)
SENDER, RECIPIENT = UNIVERSITY, EDUCATION_DEPARTMENT
PUSH_TIMEOUT_SECONDS = 2
NS = {"gw": "urn:gradex:gateway:1"}
# Short enough for recovery within seconds (the defaults are 60 s, 120 s and 5 s).
RECOVERY_SETTINGS = {
    "GATEWAY_DELIVERY_GRACE_SECONDS": "2",
    "GATEWAY_DELIVERY_LEASE_SECONDS": "5",
    "GATEWAY_RETRY_BASE_SECONDS": "1",
}


def prepare_database(database_url: str, keys_dir: Path, endpoint: str) -> None:
    """Migrate, add the demo participants with their certificates, make the recipient a push one."""
    engine = connect(database_url)
    try:
        migrate(engine)
        now = datetime.now(UTC)
        with transaction(session_factory(engine)) as session:
            for data in demo_participant_inputs():
                add_participant(session, data, now)
                pem = (keys_dir / "participants" / data.id / "cert.pem").read_bytes()
                register_certificate(session, data.id, pem, now)
            session.execute(
                update(Participant)
                .where(Participant.id == RECIPIENT)
                .values(
                    delivery_mode="push",
                    endpoint_url=endpoint,
                    push_timeout_seconds=PUSH_TIMEOUT_SECONDS,
                    max_delivery_attempts=100,  # the faults must not dead-letter anything
                )
            )
    finally:
        engine.dispose()


def signed_envelopes(keys_dir: Path, count: int) -> dict[str, bytes]:
    """``count`` signed destination registrations by message id."""
    found = credentials(keys_dir, SENDER)
    document = example("destination-registration")
    envelopes = {}
    for _ in range(count):
        message_id = str(uuid.uuid4())
        wrapped = wrap(document, sender=SENDER, recipient=RECIPIENT, service=SERVICE, message_id=message_id)
        envelopes[message_id] = sign_envelope_bytes(wrapped, found.key, found.certificate)
    return envelopes


@dataclass
class Exchange:
    home: Path
    database_url: str
    recipient: FaultyRecipient
    processes: Processes
    engine: Engine
    redis_port: int = field(default_factory=free_port)
    gateway_port: int = field(default_factory=free_port)
    # message id -> accepted (its receipt came back, the first time or after sending again)
    outcomes: dict[str, str] = field(default_factory=dict)
    connection_errors: int = 0
    taken: int = 0  # messages accepted (or found accepted) so far, while send() runs
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- processes ------------------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        env.update(
            GATEWAY_DATA_DIR=str(self.home / "data"),
            GATEWAY_KEYS_DIR=str(self.home / "keys"),
            GATEWAY_DATABASE_URL=self.database_url,
            GATEWAY_BROKER_URL=f"redis://127.0.0.1:{self.redis_port}/0",
            GATEWAY_HOST="127.0.0.1",
            GATEWAY_PORT=str(self.gateway_port),
            **RECOVERY_SETTINGS,
        )
        return env

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def start_redis(self) -> Started:
        """A throw-away redis-server on the exchange's port: nothing persisted, so a kill loses the queue."""
        started = self.processes.start(
            "redis",
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            self.env,
        )
        wait_until(self.redis_answers, 15, "redis-server to answer PING", lambda: started.log_tail())
        return started

    def redis_answers(self) -> bool:
        try:
            with redis.Redis(port=self.redis_port, socket_timeout=1) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def queued_on_broker(self) -> int:
        """Broker messages waiting in the delivery queue (dramatiq's list and its delay queue)."""
        with redis.Redis(port=self.redis_port, socket_timeout=1) as client:
            return int(client.llen("dramatiq:deliveries")) + int(client.zcard("dramatiq:deliveries.DQ"))

    def start_gateway(self) -> Started:
        started = self.processes.start("serve", [sys.executable, "-m", "gateway", "serve"], self.env)
        wait_until(self._healthy, 30, "gateway serve to answer /healthz", lambda: started.log_tail())
        return started

    def _healthy(self) -> bool:
        if not self.processes.started["serve"].alive():
            raise AssertionError(f"gateway serve exited:\n{self.processes.started['serve'].log_tail()}")
        try:
            return requests.get(f"{self.base_url}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def start_worker(self, name: str, threads: int = 8) -> Started:
        """``gateway worker --threads threads``; the one recipient may use every thread (these tests
        are about crashes, with all threads in deliveries; tests/delivery/test_fairness.py is about
        the share of the threads a recipient gets)."""
        argv = [sys.executable, "-m", "gateway", "worker", "--threads", str(threads), "--sweep-interval", "1"]
        started = self.processes.start(name, [*argv, "--per-recipient", str(threads)], self.env)
        wait_until(
            lambda: "delivery worker:" in started.log_tail(200) or not started.alive(),
            30,
            f"{name} to start",
            started.log_tail,
        )
        assert started.alive(), f"{name} exited:\n{started.log_tail()}"
        return started

    # --- sending --------------------------------------------------------------------------------

    def send(
        self, envelopes: dict[str, bytes], concurrency: int = 4, deadline_s: float = 60.0, pause: float = 0.0
    ) -> None:
        """Send every envelope until the gateway has accepted it, whatever happens to the gateway.

        A connection error (the gateway is down or was killed mid-request) means "unknown": the
        same bytes are sent again. REPLAY then says it had been accepted before the answer was lost.
        Any other refusal fails the test. Each sending thread waits ``pause`` seconds after each
        message, so that a test can act while sends are still going on, however fast the machine.
        """
        deadline = time.monotonic() + deadline_s
        with ThreadPoolExecutor(concurrency) as pool:
            for message_id, outcome in zip(
                envelopes, pool.map(lambda e: self._send_one(e, deadline, pause), envelopes.values()), strict=True
            ):
                self.outcomes[message_id] = outcome

    def _send_one(self, envelope: bytes, deadline: float, pause: float) -> str:
        outcome = self._post_until_taken(envelope, deadline)
        with self._lock:
            self.taken += 1
        time.sleep(pause)
        return outcome

    def _post_until_taken(self, envelope: bytes, deadline: float) -> str:
        while True:
            try:
                answer = requests.post(
                    f"{self.base_url}/soap",
                    data=envelope,
                    headers={"Content-Type": "text/xml; charset=utf-8"},
                    timeout=15,
                )
            except requests.RequestException as exc:
                with self._lock:
                    self.connection_errors += 1
                if time.monotonic() > deadline:
                    raise AssertionError(f"the gateway did not take a message before the deadline: {exc}") from exc
                time.sleep(0.2)
                continue
            body = etree.fromstring(answer.content)
            code = body.findtext(".//gw:FaultDetail/gw:Code", namespaces=NS)
            if answer.status_code == 200 and code is None:
                return "accepted"  # the first time, or its original receipt for a copy sent again
            refusal = f"HTTP {answer.status_code} {code}: {answer.text[:300]}"
            raise AssertionError(f"the gateway refused a message: {refusal}")

    @property
    def accepted(self) -> set[str]:
        return set(self.outcomes)

    # --- what became of them --------------------------------------------------------------------

    def resent_ids(self) -> set[str]:
        """The messages the gateway answered with their original receipt when sent again."""
        # Entries of PostgreSQL intake transactions wait in audit_pending until the sequencer indexes them.
        query = text(
            "SELECT message_id FROM audit_entries WHERE kind = 'message.resent' "
            "UNION SELECT message_id FROM audit_pending WHERE kind = 'message.resent'"
        )
        with self.engine.connect() as connection:
            return {row[0] for row in connection.execute(query)}

    def deliveries(self) -> dict[str, tuple[str, int, str | None]]:
        """(status, attempts, last error) of the recipient's deliveries, by message id."""
        query = text(
            "SELECT m.message_id, d.status, d.attempts, d.last_error FROM deliveries d "
            "JOIN messages m ON m.id = d.message_pk WHERE d.recipient_id = :recipient"
        )
        with self.engine.connect() as connection:
            rows = connection.execute(query, {"recipient": RECIPIENT}).all()
        return {row[0]: (row[1], row[2], row[3]) for row in rows}

    def statuses(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for status, _, _ in self.deliveries().values():
            counts[status] = counts.get(status, 0) + 1
        return counts

    def all_delivered(self, message_ids: Sequence[str] | set[str] | None = None) -> bool:
        wanted = set(message_ids) if message_ids is not None else self.accepted
        rows = self.deliveries()
        return all(rows.get(m, ("missing",))[0] == "delivered" for m in wanted) and all(
            self.recipient.handled[(SENDER, m)] >= 1 for m in wanted
        )

    def explain(self) -> str:
        """What a failure message needs: the deliveries table, the recipient's counts, the logs."""
        listing = subprocess.run(
            [sys.executable, "-m", "gateway", "deliveries", "list", "--json", "--limit", "1000"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        try:
            rows = json.loads(listing.stdout)
            table = "\n".join(
                f"#{r['delivery']} {r['message_id']} {r['status']} {r['attempts']}x {r['last_error'] or ''}"
                for r in rows
            )
        except ValueError:
            table = listing.stdout + listing.stderr
        return (
            f"accepted {len(self.accepted)} messages; statuses {self.statuses()}\n{self.recipient.snapshot()}\n"
            f"gateway deliveries list --json:\n{table}\n{self.processes.logs()}"
        )

    def wait_all_delivered(self, timeout: float = 45.0) -> None:
        wait_until(self.all_delivered, timeout, "every accepted message to be delivered", self.explain)

    def assert_exactly_once(self) -> None:
        """Every accepted message delivered, handled exactly once, nothing lost, nothing extra."""
        rows = self.deliveries()
        accepted = self.accepted
        assert set(rows) == accepted, f"stored but not accepted, or accepted but not stored\n{self.explain()}"
        assert {s for s, _, _ in rows.values()} == {"delivered"}, self.explain()
        handled = {message_id for sender, message_id in self.recipient.handled if sender == SENDER}
        assert handled == accepted, f"lost: {sorted(accepted - handled)}\n{self.explain()}"
        twice = {key: n for key, n in self.recipient.handled.items() if n != 1}
        assert not twice, f"handled more than once: {twice}\n{self.explain()}"
        assert len(accepted) == sum(self.recipient.handled.values())
        print(self.summary())  # shown with -s, or when a later assertion of the test fails

    def summary(self) -> str:
        outcomes: dict[str, int] = {}
        for outcome in self.outcomes.values():
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        attempts = sorted(a for _, a, _ in self.deliveries().values())
        return (
            f"sends: {outcomes}, {self.connection_errors} connection errors; {self.recipient.snapshot()}; "
            f"attempts per delivery from {attempts[0] if attempts else '-'} to {attempts[-1] if attempts else '-'}"
        )
