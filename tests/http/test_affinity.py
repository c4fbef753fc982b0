"""``GATEWAY_CPU_AFFINITY``: each ``gateway serve`` worker, and each ``gateway worker``, on one CPU of
its own (gateway.serving.affinity)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis

from gateway.errors import ConfigurationError
from gateway.serving.affinity import assign_cpu, claim_cpu, cpu_quota, plan, pre_fork_hook
from gateway.settings import Settings
from tests.conftest import REDIS_URL, require
from tests.serving import served_process

# --- the plan ---------------------------------------------------------------------------------------


def test_auto_pins_when_the_cpus_are_the_gateways() -> None:
    assert plan("auto", {1, 0, 3, 2}, None).cpus == (0, 1, 2, 3)
    assert plan("auto", {4, 5}, 2.0).cpus == (4, 5)  # a cpuset with a quota to match
    assert plan("auto", {0, 1}, None).reason == "each worker on one of CPUs 0, 1"


def test_auto_does_not_pin_cpus_shared_under_a_quota_but_on_does() -> None:
    shared = plan("auto", range(8), 1.5)
    assert shared.cpus == ()
    assert "a CPU quota of 1.5 cores over 8 CPUs" in shared.reason
    assert plan("on", range(8), 1.5).cpus == tuple(range(8))


def test_off_and_a_single_cpu_never_pin() -> None:
    assert plan("off", {0, 1}, None).cpus == ()
    assert plan("on", {3}, None).cpus == ()
    assert "one CPU only" in plan("on", {3}, None).reason


def test_the_setting_is_checked(settings: Settings) -> None:
    env = {"GATEWAY_DATA_DIR": str(settings.data_dir), "GATEWAY_KEYS_DIR": str(settings.keys_dir)}
    assert Settings.from_env(env).cpu_affinity == "auto"
    assert Settings.from_env({**env, "GATEWAY_CPU_AFFINITY": "OFF"}).cpu_affinity == "off"
    with pytest.raises(ConfigurationError, match="GATEWAY_CPU_AFFINITY must be one of auto, on, off"):
        Settings.from_env({**env, "GATEWAY_CPU_AFFINITY": "2"})


# --- which CPU each worker gets ----------------------------------------------------------------------


def test_workers_are_spread_and_a_replacement_takes_its_predecessors_cpu() -> None:
    cpus = (0, 1)
    assert assign_cpu(cpus, []) == 0
    assert assign_cpu(cpus, [0]) == 1
    assert assign_cpu(cpus, [1]) == 0  # worker on CPU 0 died: its replacement goes there
    assert [assign_cpu(cpus, taken) for taken in ([0, 1], [0, 1, 0])] == [0, 1]  # more workers than CPUs: evenly
    assert assign_cpu(cpus, [None, 7]) == 0  # unknown or vanished CPUs count for nothing


def test_the_arbiters_hook_notes_the_cpu_on_the_worker_it_forks() -> None:
    hook = pre_fork_hook(plan("on", {0, 1, 2}, None))
    arbiter = SimpleNamespace(WORKERS={11: SimpleNamespace(gateway_cpu=0), 12: SimpleNamespace(gateway_cpu=2)})
    worker = SimpleNamespace()
    hook(arbiter, worker)
    assert worker.gateway_cpu == 1
    unpinned = SimpleNamespace()
    pre_fork_hook(plan("off", {0, 1, 2}, None))(arbiter, unpinned)
    assert not hasattr(unpinned, "gateway_cpu")


def test_delivery_workers_claim_cpus_from_the_highest_and_free_them_when_they_exit(tmp_path: Path) -> None:
    first, second = claim_cpu((0, 1, 2), tmp_path), claim_cpu((0, 1, 2), tmp_path)
    third = claim_cpu((0, 1, 2), tmp_path)
    assert first is not None and second is not None and third is not None
    assert (first.cpu, second.cpu, third.cpu) == (2, 1, 0)
    assert claim_cpu((0, 1, 2), tmp_path) is None  # every CPU held: the next one runs unpinned
    second.lock.close()  # its process exited (the kernel drops the lock, SIGKILL included)
    again = claim_cpu((0, 1, 2), tmp_path)
    assert again is not None and again.cpu == 1
    for claimed in (first, third, again):
        claimed.lock.close()


def test_an_unusable_lock_directory_leaves_the_worker_unpinned(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    assert claim_cpu((0, 1), tmp_path / "file" / "locks") is None


# --- the cgroup's CPU quota ---------------------------------------------------------------------------


def test_a_cgroup_v2_quota(tmp_path: Path) -> None:
    (tmp_path / "box").mkdir()
    (tmp_path / "box" / "cpu.max").write_text("150000 100000\n")
    assert cpu_quota(tmp_path, "0::/box\n") == 1.5
    (tmp_path / "box" / "cpu.max").write_text("max 100000\n")
    assert cpu_quota(tmp_path, "0::/box\n") is None
    (tmp_path / "cpu.max").write_text("200000 100000\n")  # a container's own cgroup, mounted at the root
    assert cpu_quota(tmp_path, "0::/elsewhere\n") == 2.0


def test_a_cgroup_v1_quota(tmp_path: Path) -> None:
    directory = tmp_path / "cpu,cpuacct" / "docker" / "abc"
    directory.mkdir(parents=True)
    (directory / "cpu.cfs_quota_us").write_text("50000\n")
    (directory / "cpu.cfs_period_us").write_text("100000\n")
    membership = "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n"
    assert cpu_quota(tmp_path, membership) == 0.5
    (directory / "cpu.cfs_quota_us").write_text("-1\n")
    assert cpu_quota(tmp_path, membership) is None


def test_no_cgroup_files_means_no_quota(tmp_path: Path) -> None:
    assert cpu_quota(tmp_path, "0::/\n") is None
    assert cpu_quota(tmp_path, "3:cpu:/x\n") is None


# --- gateway serve ------------------------------------------------------------------------------------


def workers_of(arbiter: int, count: int) -> list[int]:
    """The pids of ``count`` worker processes the arbiter forked (waits up to 30 s for them)."""
    deadline = time.monotonic() + 30
    while True:
        children = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rpartition(")")[2].split()[1]) == arbiter:
                    children.append(int(entry.name))
        if len(children) >= count or time.monotonic() > deadline:
            return sorted(children)
        time.sleep(0.1)


def cpus_of_threads(pid: int) -> set[frozenset[int]]:
    """The CPU set of each of the process's threads (distinct sets only)."""
    return {frozenset(os.sched_getaffinity(int(tid.name))) for tid in (Path("/proc") / str(pid) / "task").iterdir()}


def placement_once_pinned(workers: list[int]) -> list[set[frozenset[int]]]:
    """Each worker's threads' CPU sets, once every worker runs on one CPU (or after 30 s, as they are).

    The server answers as soon as one worker is up; a worker forked just before may not have reached
    its ``init_process``, where it pins itself, when the test first looks.
    """
    deadline = time.monotonic() + 30
    while True:
        placed = [cpus_of_threads(worker) for worker in workers]
        if each_on_one_cpu(placed) or time.monotonic() > deadline:
            return placed
        time.sleep(0.1)


def each_on_one_cpu(placed: list[set[frozenset[int]]]) -> bool:
    """Every worker's threads share one CPU set, of one CPU."""
    return all(len(threads) == 1 and len(next(iter(threads))) == 1 for threads in placed)


def machine_cpus() -> set[int]:
    return set(os.sched_getaffinity(0))


def test_the_embedded_worker_runs_all_its_threads_on_one_cpu(home: Path) -> None:
    with served_process(home) as (_base, arbiter):
        (worker,) = workers_of(arbiter.pid, 1)
        threads = cpus_of_threads(worker)
    banner = (home / "serve.log").read_text()
    if len(machine_cpus()) < 2:  # nothing to choose from: the worker runs where it may, and says so
        assert "CPU affinity    not pinned: the process may run on one CPU only" in banner
        assert threads == {frozenset(machine_cpus())}
        return
    assert len(threads) == 1, threads  # the delivery threads, the writer and the request threads alike
    (cpus,) = threads
    assert len(cpus) == 1 and cpus <= machine_cpus()
    assert "CPU affinity    each worker on one of CPUs" in banner


def test_off_leaves_the_worker_on_every_cpu(home: Path) -> None:
    with served_process(home, {"GATEWAY_CPU_AFFINITY": "off"}) as (_base, arbiter):
        (worker,) = workers_of(arbiter.pid, 1)
        threads = cpus_of_threads(worker)
    assert threads == {frozenset(machine_cpus())}
    assert "CPU affinity    off (GATEWAY_CPU_AFFINITY=off)" in (home / "serve.log").read_text()


def test_two_workers_get_a_cpu_each(home: Path) -> None:
    require("Redis", lambda: redis.Redis.from_url(REDIS_URL).ping())  # more than one worker needs a broker
    if len(machine_cpus()) < 2:
        pytest.skip("this machine lets the tests run on one CPU only: two workers cannot get one each")
    with served_process(home, {"GATEWAY_BROKER_URL": REDIS_URL, "GATEWAY_WORKERS": "2"}) as (_base, arbiter):
        workers = workers_of(arbiter.pid, 2)
        assert len(workers) == 2, workers
        placed = placement_once_pinned(workers)
    assert each_on_one_cpu(placed), placed
    assert placed[0] != placed[1], placed


def start_delivery_workers(
    home: Path, tmp_path: Path, count: int, affinity: str | None
) -> list[tuple[str, set[frozenset[int]]]]:
    """Start ``count`` ``gateway worker``s one after the other; each one's banner and its threads' CPUs."""
    require("Redis", lambda: redis.Redis.from_url(REDIS_URL).ping())
    env = {
        **os.environ,
        "GATEWAY_DATA_DIR": str(home / "data"),
        "GATEWAY_KEYS_DIR": str(home / "keys"),
        "GATEWAY_BROKER_URL": REDIS_URL,
        "TMPDIR": str(tmp_path),  # the CPU claims of this test's workers only
        **({"GATEWAY_CPU_AFFINITY": affinity} if affinity else {}),
    }
    started: list[tuple[subprocess.Popen[str], Path]] = []
    try:
        for n in range(count):
            log = tmp_path / f"worker-{n}.log"
            argv = [sys.executable, "-m", "gateway", "worker", "--threads", "2"]
            with log.open("w") as output:
                process = subprocess.Popen(argv, env=env, stdout=output, stderr=subprocess.STDOUT, text=True)
            started.append((process, log))
            deadline = time.monotonic() + 30
            while "delivery worker:" not in log.read_text() and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            assert "delivery worker:" in log.read_text(), log.read_text()
        return [(log.read_text(), cpus_of_threads(process.pid)) for process, log in started]
    finally:
        for process, _ in started:
            process.terminate()
            process.wait(timeout=30)


def test_a_delivery_worker_is_not_pinned_by_default(home: Path, tmp_path: Path) -> None:
    ((banner, threads),) = start_delivery_workers(home, tmp_path, 1, None)
    assert threads == {frozenset(machine_cpus())}
    assert "CPU affinity not pinned (GATEWAY_CPU_AFFINITY=auto; `on` pins delivery workers too)" in banner


def test_with_on_two_delivery_workers_each_run_on_a_cpu_of_their_own(home: Path, tmp_path: Path) -> None:
    cpus = sorted(machine_cpus())
    (first, first_threads), (second, second_threads) = start_delivery_workers(home, tmp_path, 2, "on")
    if len(cpus) < 2:
        assert "CPU affinity not pinned: the process may run on one CPU only" in first + second
        return
    # every thread of each, the highest CPU first
    assert [first_threads, second_threads] == [{frozenset({cpus[-1]})}, {frozenset({cpus[-2]})}]
    assert f"on CPU {cpus[-1]}" in first and f"on CPU {cpus[-2]}" in second, (first, second)
