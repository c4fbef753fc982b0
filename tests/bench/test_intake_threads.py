"""bench/intake divides the gateway workers' CPU by thread: it reads each thread's CPU under the name
the kernel shows (``servers.thread_cpu_seconds``) and prints each name's share and CPU a message
(``report.thread_split``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.settings import PROJECT_ROOT
from tests.bench_modules import load_bench_module

# A worker stand-in: a thread named as the gateway names its writer spins for 0.4 s of CPU and then
# waits, alive; the main thread only waits. It says "ready" once the spinning is over.
CHILD = """
import threading, time
from gateway.monitoring.threads import name_thread

spun = threading.Event()

def spin():
    name_thread("gateway-writer")
    until = time.thread_time() + 0.4
    while time.thread_time() < until:
        pass
    spun.set()
    time.sleep(60)

threading.Thread(target=spin, daemon=True).start()
spun.wait()
print("ready", flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads Linux's /proc/<pid>/task")
def test_a_workers_threads_cpu_is_read_by_the_name_the_kernel_shows() -> None:
    servers = load_bench_module("intake/servers.py")
    with subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True, cwd=PROJECT_ROOT) as child:
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
            used = servers.thread_cpu_seconds(os.getpid())  # the child is this process's descendant
        finally:
            child.kill()
    assert used["gateway-writer"] >= 0.3  # the kernel counts CPU in ticks: 0.4 s is 0.39 - 0.41
    assert used["main"] < used["gateway-writer"]  # the child's main thread, called main whatever its name


def test_the_split_gives_each_threads_share_and_cpu_a_message() -> None:
    report = load_bench_module("intake/report.py")
    load = load_bench_module("intake/load.py")
    result = load.LoadResult(generator="python", connections=16, requests=1000, failures=0, elapsed_s=2.0)
    result.latencies_s = [0.01] * 1000
    before = {"main": 1.0, "gateway-request": 10.0, "gateway-writer": 5.0}
    after = {"main": 1.1, "gateway-request": 10.6, "gateway-writer": 5.3, "delivery-sweep": 0.0}
    figures = report.round_figures("gateway", 1, result, ({1: 0.0}, {1: 1.0}), 2.0, 0, None, (before, after))
    assert figures.cpu_by_thread == {"main": 0.1, "gateway-request": 0.6, "gateway-writer": 0.3, "delivery-sweep": 0.0}
    split = report.thread_split([figures])
    assert split == (
        "gateway-request 60 % (0.60 ms a message), gateway-writer 30 % (0.30 ms a message), "
        "main 10 % (0.10 ms a message)"
    )


def test_no_readings_no_split() -> None:
    report = load_bench_module("intake/report.py")
    load = load_bench_module("intake/load.py")
    result = load.LoadResult(generator="python", connections=16, requests=10, elapsed_s=1.0)
    result.latencies_s = [0.01] * 10
    figures = report.round_figures("gateway", 1, result, ({1: 0.0}, {1: 1.0}), 1.0, 0)
    assert report.thread_split([figures]) is None
