"""docs/deployment.md's topology, run: two ``gateway serve`` nodes behind HAProxy and two ``gateway
worker``s on one PostgreSQL schema and one Redis (issue 14, item 1).

It shows what the document promises: a message accepted through one node is a replay at the other
(the replay check is the shared database's, not a node's); each delivery happens once; the audit
log has one sequencer at a time although both workers run one, and it verifies; and a node killed
and restarted while messages flow through the proxy loses nothing, the senders sending again what
had no answer.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from gateway.store.db import connect
from tests.conftest import require
from tests.delivery.faults_exchange import SENDER, prepare_database, signed_envelopes
from tests.delivery.faults_processes import Processes, wait_until
from tests.delivery.faults_recipient import FaultyRecipient, serve_faulty_recipient
from tests.deployment.cluster import NODES, Cluster

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


def _tool(name: str, package: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        raise FileNotFoundError(f"{name} is not installed (apt-get install {package})")
    return found


@pytest.fixture
def cluster(template_home: Path, tmp_path: Path, postgres_url: str) -> Iterator[Cluster]:
    require("redis-server", lambda: _tool("redis-server", "redis-server"))
    require("HAProxy", lambda: _tool("haproxy", "haproxy"))
    logs = tmp_path / "logs"
    logs.mkdir()
    recipient = FaultyRecipient()
    processes = Processes(logs)
    engine = connect(postgres_url)
    try:
        with serve_faulty_recipient(recipient, (template_home / "keys" / "ca" / "ca.cert.pem",)) as endpoint:
            try:
                prepare_database(postgres_url, template_home / "keys", endpoint)
                found = Cluster(tmp_path, template_home, postgres_url, recipient, processes, engine)
                found.start_redis()
                for node in NODES:
                    found.start_node(node)
                for node in NODES:
                    found.start_worker(node)
                found.start_proxy(_tool("haproxy", "haproxy"))
                yield found
            finally:
                processes.stop_all()
    finally:
        engine.dispose()


def test_two_nodes_behind_a_proxy(cluster: Cluster) -> None:
    envelopes = signed_envelopes(cluster.home("a") / "keys", 61)
    first_id, first = next(iter(envelopes.items()))
    del envelopes[first_id]
    later = list(signed_envelopes(cluster.home("a") / "keys", 60).items())

    # Accepted through node A, a replay at node B: the replay check is the shared database's.
    status, code, _ = cluster.post(cluster.node_url("a"), first)
    assert (status, code) == (200, None)
    status, code, body = cluster.post(cluster.node_url("b"), first)
    # REPLAY today; a resend of an accepted message may be answered with its original receipt instead.
    assert code in ("REPLAY", "DUPLICATE_MESSAGE") or (status == 200 and first_id.encode() in body), (status, code)
    cluster.outcomes[first_id] = "accepted"
    with cluster.engine.connect() as connection:
        stored = connection.execute(text("SELECT count(*) FROM messages WHERE message_id = :m"), {"m": first_id})
        assert stored.scalar_one() == 1

    # Messages through the proxy while node A is killed (SIGKILL: requests cut off mid-way) and started again.
    restarted = threading.Event()

    def restart_a() -> None:
        wait_until(lambda: cluster.taken >= 15, 60, "15 messages to be taken before the restart")
        cluster.processes.kill("serve-a")
        time.sleep(1.0)
        cluster.start_node("a")
        restarted.set()

    restarter = threading.Thread(target=restart_a, name="restart-node-a", daemon=True)
    restarter.start()
    cluster.send(envelopes, concurrency=6, pause=0.0)
    restarter.join(timeout=90)
    assert restarted.is_set(), cluster.explain()
    assert cluster.taken == len(envelopes)
    # Then node A takes its share again once HAProxy's checks have seen it ready (rise 2 x 1 s): send
    # in rounds of 10 until it has accepted some (however long the checks take on a loaded machine).
    restarted_a = cluster.processes.logs_dir / "serve-a.2.log"
    for start in range(0, len(later), 10):
        cluster.send(dict(later[start : start + 10]), concurrency=2)
        if _accepted_lines(restarted_a) >= 3:
            break
        time.sleep(1.0)  # a fast machine sends all rounds before the checks have seen node A twice

    # Each delivery once: every accepted message delivered, handled by the recipient exactly once.
    wait_until(cluster.all_delivered, 60, "every accepted message to be delivered", cluster.explain)
    deliveries = cluster.deliveries()
    assert set(deliveries) == set(cluster.outcomes), cluster.explain()
    assert set(deliveries.values()) == {"delivered"}
    handled = {key: n for key, n in cluster.recipient.handled.items() if key[0] == SENDER}
    assert set(handled) == {(SENDER, m) for m in cluster.outcomes}
    assert set(handled.values()) == {1}, f"handled more than once: {cluster.recipient.snapshot()}"

    # Both nodes served messages (their JSON request lines say so), node A before and after its restart.
    served = {path.stem: _accepted_lines(path) for path in sorted(cluster.processes.logs_dir.glob("serve-*.log"))}
    assert set(served) == {"serve-a.1", "serve-a.2", "serve-b.1"}
    assert all(served.values()), served
    # Every message taken has its line: accepted, or, when the node that accepted it was killed before
    # answering, resent (the sender sent it again and got its receipt at the other node).
    answered = set().union(*(_answered_ids(path) for path in cluster.processes.logs_dir.glob("serve-*.log")))
    assert set(cluster.outcomes) <= answered, sorted(set(cluster.outcomes) - answered)
    # Node B's /metrics adds up its two gunicorn workers' counters (multiprocess mode): its JSON lines' count.
    assert _accepted_metric(cluster, "b") == served["serve-b.1"]

    # One sequencer at a time: both workers ran one, the checkpoints' sizes only grow, and the log
    # verifies with either worker's published checkpoints.
    wait_until(lambda: _audit_integrated(cluster), 30, "the audit log to be integrated", cluster.explain)
    with cluster.engine.connect() as connection:
        sizes = list(connection.execute(text("SELECT size FROM audit_checkpoints ORDER BY id")).scalars())
        leaves = connection.execute(text("SELECT count(*), min(leaf_index), max(leaf_index) FROM audit_entries")).one()
    assert sizes == sorted(set(sizes)), "two checkpoints of one size, or a smaller one after a larger"
    assert leaves[0] == leaves[2] + 1 and leaves[1] == 0, leaves  # indexes 0..n-1, none twice
    published = {}
    for node in NODES:
        verified = subprocess.run(
            [sys.executable, "-m", "gateway", "audit", "verify", "--json"],
            env=cluster.env(node),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert verified.returncode == 0, verified.stdout + verified.stderr
        report = json.loads(verified.stdout)
        assert report["ok"] and report["entries"] == leaves[0], report
        published[node] = report["published"]
    assert sum(published.values()) >= 1, published
    replayed = list(cluster.outcomes.values()).count("replayed")
    print(
        f"sent {len(cluster.outcomes)}, {cluster.retries} sent again, {replayed} answered REPLAY; "
        f"accepted per node run {served}; "
        f"checkpoints {len(sizes)}, published per worker {published}"
    )


def _accepted_lines(path: Path) -> int:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return sum(1 for line in lines if line.startswith('{"event":"request"') and '"outcome":"accepted"' in line)


def _answered_ids(path: Path) -> set[str]:
    """The message ids of the requests answered with a receipt (accepted, or resent) in a node's log."""
    answered = set()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith('{"event":"request"'):
            event = json.loads(line)
            if event.get("outcome") in ("accepted", "resent") and event.get("message_id"):
                answered.add(event["message_id"])
    return answered


def _accepted_metric(cluster: Cluster, node: str) -> float:
    scrape = requests.get(f"http://127.0.0.1:{cluster.metrics_ports[node]}/metrics", timeout=10)
    assert scrape.status_code == 200
    return sum(
        sample.value
        for family in text_string_to_metric_families(scrape.text)
        for sample in family.samples
        if sample.name == "gateway_messages_total" and sample.labels["outcome"] == "accepted"
    )


def _audit_integrated(cluster: Cluster) -> bool:
    """Every entry indexed and integrated: none still waiting in audit_pending (the delivery
    outcomes wait there for the periodic sequencer) and the tree as large as the log."""
    with cluster.engine.connect() as connection:
        size, integrated = connection.execute(text("SELECT size, integrated FROM audit_log_state")).one()
        waiting = connection.execute(text("SELECT count(*) FROM audit_pending WHERE leaf_index IS NULL")).scalar()
    return bool(size == integrated and waiting == 0)
