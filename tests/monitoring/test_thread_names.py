"""The gateway's threads carry their names where the kernel shows them (``gateway.monitoring.threads``):
what ``top -H`` shows an operator and what bench/intake divides a worker's CPU by."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from gateway.intake.writer import BatchWriter
from gateway.monitoring import threads
from gateway.monitoring.threads import name_thread
from gateway.serving.bridge import GatewayASGI

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread names in /proc are Linux's")


def kernel_name() -> str:
    """The calling thread's name as the kernel keeps it."""
    return Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text().rstrip("\n")


def in_a_thread(target: object) -> str:
    """Run ``target`` (a callable) in a new thread; the kernel's name of that thread afterwards."""
    seen: list[str] = []

    def run() -> None:
        target()  # type: ignore[operator]
        seen.append(kernel_name())

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    return seen[0]


def test_a_named_thread_is_seen_by_the_kernel_under_its_name() -> None:
    assert in_a_thread(lambda: name_thread("gateway-writer")) == "gateway-writer"


def test_a_long_name_is_cut_to_what_the_kernel_keeps() -> None:
    assert in_a_thread(lambda: name_thread("gateway-request-thread")) == "gateway-request"[: threads.COMM_BYTES]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    made = create_engine(f"sqlite:///{tmp_path / 'names.db'}", connect_args={"check_same_thread": False})
    yield made
    made.dispose()


def test_the_group_commits_writer_is_named(engine: Engine) -> None:
    writer = BatchWriter(sessionmaker(engine))
    seen: list[str] = []

    def work(_session: Session) -> None:
        seen.append(kernel_name())

    writer.run(work)
    assert seen == [threads.WRITER]


def test_the_request_threads_are_named() -> None:
    bridge = GatewayASGI(lambda environ, start_response: [], max_body=1024, threads=2)
    try:
        names = {bridge.executor.submit(kernel_name).result(10) for _ in range(4)}
    finally:
        bridge.executor.shutdown()
    assert names == {threads.REQUEST}
