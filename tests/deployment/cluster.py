"""Two gateway nodes behind HAProxy, two workers, one PostgreSQL schema and one Redis: docs/deployment.md's
topology on one machine, every process the test's own.

Each node and each worker runs from a home of its own (``node-a``, ``node-b``): the same key material
(copied, as an operator copies ``keys/`` to every machine), its own data folder (published checkpoints,
the metrics' files). ``worker-a`` runs from ``node-a``'s home and ``worker-b`` from ``node-b``'s, as if
each machine ran one of each. The push recipient is ``tests.delivery.faults_recipient``'s, in a thread,
counting what it handled.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import redis
import requests
from lxml import etree
from sqlalchemy import Engine, text

from gateway.settings import PROJECT_ROOT
from tests.conftest import free_port
from tests.delivery.faults_exchange import NS, RECOVERY_SETTINGS, SENDER
from tests.delivery.faults_processes import Processes, Started, wait_until
from tests.delivery.faults_recipient import FaultyRecipient

NODES = ("a", "b")
# A proxy's own answers while no node can take the request (the node died mid-request, or both are
# starting): the sender sends the same bytes again, as docs/protocol.md tells senders to.
PROXY_STATUSES = (502, 503, 504)

# The shipped configuration, with the test's addresses in place of its `bind` and `server` lines.
HAPROXY_CONFIG = PROJECT_ROOT / "docs" / "deployment" / "haproxy.cfg"


def haproxy_config(port: int, servers: dict[str, int]) -> str:
    """docs/deployment/haproxy.cfg, listening on loopback ``port`` (no TLS) and balancing ``servers``."""
    shipped = HAPROXY_CONFIG.read_text(encoding="utf-8")
    assert re.search(r"^    bind .*$", shipped, re.M) and re.search(r"^    server .*$", shipped, re.M)
    config = re.sub(r"^    bind .*$", f"    bind 127.0.0.1:{port}", shipped, count=1, flags=re.M)
    config = re.sub(r"^    server .*\n", "", config, flags=re.M)
    return config + "".join(f"    server node-{name} 127.0.0.1:{p} check\n" for name, p in servers.items())


@dataclass
class Cluster:
    root: Path
    template_home: Path
    database_url: str
    recipient: FaultyRecipient
    processes: Processes
    engine: Engine
    redis_port: int = field(default_factory=free_port)
    proxy_port: int = field(default_factory=free_port)
    ports: dict[str, int] = field(default_factory=lambda: {n: free_port() for n in NODES})
    metrics_ports: dict[str, int] = field(default_factory=lambda: {n: free_port() for n in NODES})
    outcomes: dict[str, str] = field(default_factory=dict)  # message id -> accepted | replayed
    retries: int = 0  # sends repeated after a connection error or a proxy's 502/503/504
    taken: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def home(self, node: str) -> Path:
        path = self.root / f"node-{node}"
        if not path.exists():
            shutil.copytree(self.template_home, path)
        return path

    def env(self, node: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        env.update(
            GATEWAY_DATA_DIR=str(self.home(node) / "data"),
            GATEWAY_KEYS_DIR=str(self.home(node) / "keys"),
            GATEWAY_DATABASE_URL=self.database_url,
            GATEWAY_BROKER_URL=f"redis://127.0.0.1:{self.redis_port}/0",
            GATEWAY_RATE_LIMIT_STORAGE=f"redis://127.0.0.1:{self.redis_port}/1",
            GATEWAY_HOST="127.0.0.1",
            GATEWAY_PORT=str(self.ports[node]),
            GATEWAY_PUBLIC_URL=self.proxy_url,
            GATEWAY_TRUSTED_PROXIES="127.0.0.1",
            GATEWAY_WORKERS="2",
            GATEWAY_METRICS_PORT=str(self.metrics_ports[node]),
            **RECOVERY_SETTINGS,
        )
        return env

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    def node_url(self, node: str) -> str:
        return f"http://127.0.0.1:{self.ports[node]}"

    # --- processes ------------------------------------------------------------------------------

    def start_redis(self) -> Started:
        started = self.processes.start(
            "redis",
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            os.environ,
        )

        def answers() -> bool:
            try:
                with redis.Redis(port=self.redis_port, socket_timeout=1) as client:
                    return bool(client.ping())
            except redis.RedisError:
                return False

        wait_until(answers, 15, "redis-server to answer PING", started.log_tail)
        return started

    def start_node(self, node: str) -> Started:
        name = f"serve-{node}"
        started = self.processes.start(name, [sys.executable, "-m", "gateway", "serve"], self.env(node))

        def healthy() -> bool:
            if not started.alive():
                raise AssertionError(f"{name} exited:\n{started.log_tail()}")
            try:
                return requests.get(f"{self.node_url(node)}/readyz", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_until(healthy, 45, f"{name} to be ready", started.log_tail)
        return started

    def start_worker(self, node: str) -> Started:
        name = f"worker-{node}"
        started = self.processes.start(
            name,
            [sys.executable, "-m", "gateway", "worker", "--threads", "4", "--sweep-interval", "1"],
            self.env(node),
        )
        wait_until(
            lambda: "delivery worker:" in started.log_tail(200) or not started.alive(),
            45,
            f"{name} to start",
            started.log_tail,
        )
        assert started.alive(), f"{name} exited:\n{started.log_tail()}"
        return started

    def start_proxy(self, haproxy: str) -> Started:
        config = self.root / "haproxy.cfg"
        config.write_text(haproxy_config(self.proxy_port, self.ports), encoding="utf-8")
        checked = self.processes.start("haproxy-check", [haproxy, "-c", "-f", str(config)], os.environ)
        assert checked.process.wait(timeout=30) == 0, checked.log_tail()
        started = self.processes.start("haproxy", [haproxy, "-db", "-f", str(config)], os.environ)

        def answers() -> bool:
            try:
                return requests.get(f"{self.proxy_url}/readyz", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_until(answers, 30, "HAProxy to answer with a ready node", started.log_tail)
        return started

    # --- sending --------------------------------------------------------------------------------

    def post(self, url: str, envelope: bytes) -> tuple[int, str | None, bytes]:
        """One POST: HTTP status, the gateway's fault code (None: not a fault), the body."""
        answer = requests.post(
            f"{url}/soap", data=envelope, headers={"Content-Type": "text/xml; charset=utf-8"}, timeout=20
        )
        try:
            code = etree.fromstring(answer.content).findtext(".//gw:FaultDetail/gw:Code", namespaces=NS)
        except etree.XMLSyntaxError:
            code = None
        return answer.status_code, code, answer.content

    def send(
        self, envelopes: dict[str, bytes], concurrency: int = 4, pause: float = 0.0, deadline_s: float = 90.0
    ) -> None:
        """Send every envelope through the proxy until the gateway took it, whatever happens to a node."""
        deadline = time.monotonic() + deadline_s

        def one(envelope: bytes) -> str:
            outcome = self._until_taken(envelope, deadline)
            with self._lock:
                self.taken += 1
            time.sleep(pause)
            return outcome

        with ThreadPoolExecutor(concurrency) as pool:
            for message_id, outcome in zip(envelopes, pool.map(one, envelopes.values()), strict=True):
                self.outcomes[message_id] = outcome

    def _until_taken(self, envelope: bytes, deadline: float) -> str:
        while True:
            try:
                status, code, body = self.post(self.proxy_url, envelope)
            except requests.RequestException:
                status, code, body = 0, None, b""
            if status == 200 and code is None:
                return "accepted"
            if code in ("REPLAY", "DUPLICATE_MESSAGE"):
                return "replayed"  # accepted before, its answer lost on the way
            if status not in (0, *PROXY_STATUSES) or code is not None:
                raise AssertionError(f"the gateway refused a message: HTTP {status} {code}: {body[:300]!r}")
            with self._lock:
                self.retries += 1
            if time.monotonic() > deadline:
                raise AssertionError("the gateway did not take a message before the deadline")
            time.sleep(0.2)

    # --- what became of them --------------------------------------------------------------------

    def deliveries(self) -> dict[str, str]:
        """Delivery status by message id (all messages are the sender's to one recipient)."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                text("SELECT m.message_id, d.status FROM deliveries d JOIN messages m ON m.id = d.message_pk")
            ).all()
        return {row[0]: row[1] for row in rows}

    def all_delivered(self) -> bool:
        rows = self.deliveries()
        return all(rows.get(m) == "delivered" for m in self.outcomes) and all(
            self.recipient.handled[(SENDER, m)] >= 1 for m in self.outcomes
        )

    def explain(self) -> str:
        counts: dict[str, int] = {}
        for status in self.deliveries().values():
            counts[status] = counts.get(status, 0) + 1
        return f"sent {len(self.outcomes)}; deliveries {counts}; {self.recipient.snapshot()}\n{self.processes.logs()}"
