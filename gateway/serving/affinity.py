"""Each ``gateway serve`` worker process on one CPU of its own (``GATEWAY_CPU_AFFINITY``).

A worker is one Python process: its request threads, the event loop and the group commit's
writer thread (``gateway.intake.writer``) take turns at one interpreter lock, handing it over
thousands of times a second. Left to the kernel, those threads are spread over all the CPUs, so
nearly every hand-over moves the work to another CPU with cold caches. Measured with bench/intake
on the 2-core machine (2026-12-06, on main, alternating ``on`` and ``off``): SQLite, one worker,
130 - 149 -> 166 - 226 accepted/s (115 - 131 -> 170 - 232 per server CPU-second); PostgreSQL,
two workers, 135 - 140 -> 173 - 253. A pinned worker uses about one CPU, which is all the
interpreter lock lets it use anyway. ``gateway worker`` is pinned only with ``on``
(``delivery_plan`` says why).

The arbiter gives each worker it forks the CPU with the fewest live workers (``assign_cpu``, as
gunicorn's ``pre_fork`` hook), so N workers on N CPUs get one each, a worker that is replaced gets
its predecessor's CPU, and more workers than CPUs share them evenly. The worker pins itself
before it starts any thread (``GatewayWorker.init_process``); its threads inherit the CPU.

Pinning is right when the CPUs are the gateway's: a machine or a container with CPUs of its own
(a cpuset: ``docker --cpuset-cpus``, Kubernetes' static CPU manager), which the process's affinity
mask already reflects. It is wrong where many containers share all of a host's CPUs under CPU
quotas: each would pin to the same first CPUs. So ``auto``, the default, pins unless the process's
cgroup has a CPU quota smaller than the CPUs it may run on; ``on`` pins regardless; ``off``
never pins. Reading the quota is hand-written (cgroup v2 ``cpu.max``, v1
``cpu.cfs_quota_us``): the standard library has no reader for it and it is two small files.
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class AffinityPlan:
    """The CPUs the workers are spread over (empty: not pinned), and why, for the banner."""

    cpus: tuple[int, ...]
    reason: str


def plan(mode: str, allowed: Iterable[int], quota: float | None) -> AffinityPlan:
    """Whether and where to pin workers, for ``GATEWAY_CPU_AFFINITY=mode``.

    ``allowed`` is the CPUs the process may run on (its affinity mask, a cpuset's CPUs in a
    container); ``quota`` the cgroup's CPU quota in cores, None if it has none.
    """
    cpus = tuple(sorted(allowed))
    if mode == "off":
        return AffinityPlan((), "off (GATEWAY_CPU_AFFINITY=off)")
    if len(cpus) < 2:
        return AffinityPlan((), "not pinned: the process may run on one CPU only")
    if mode == "auto" and quota is not None and quota < len(cpus):
        return AffinityPlan(
            (),
            f"not pinned: a CPU quota of {quota:g} cores over {len(cpus)} CPUs means they are shared "
            "with other containers (GATEWAY_CPU_AFFINITY=on pins all the same)",
        )
    return AffinityPlan(cpus, f"each worker on one of CPUs {_cpu_list(cpus)}")


def machine_plan(mode: str) -> AffinityPlan:
    """The plan for this process: ``mode`` over the CPUs it may use and its cgroup's CPU quota."""
    return plan(mode, os.sched_getaffinity(0), cpu_quota())


def delivery_plan(mode: str) -> AffinityPlan:
    """For ``gateway worker``: pinned only with ``GATEWAY_CPU_AFFINITY=on``, not by ``auto``.

    A delivery worker spends most of its time waiting for recipients, not at the interpreter
    lock, and pinning it showed no steady gain: bench/delivery (2026-12-06, three runs each) drained
    219 / 270 / 304 deliveries a second pinned against 244 / 258 / 262 unpinned (default prefetch),
    and its p99 with one recipient timing out was as noisy either way. Pinned, it would also hold a
    CPU that a serve worker of the same machine may be pinned to. So ``auto`` leaves it to the kernel.
    """
    if mode != "on":
        return AffinityPlan((), f"not pinned (GATEWAY_CPU_AFFINITY={mode}; `on` pins delivery workers too)")
    return machine_plan(mode)


def assign_cpu(cpus: tuple[int, ...], taken: Iterable[int | None]) -> int:
    """The CPU for the next worker: the one with the fewest live workers, the lowest first."""
    load = dict.fromkeys(cpus, 0)
    for cpu in taken:
        if cpu in load:
            load[cpu] += 1
    return min(cpus, key=lambda cpu: (load[cpu], cpu))


def pre_fork_hook(affinity: AffinityPlan) -> Any:
    """gunicorn's ``pre_fork(arbiter, worker)``: note on the worker which CPU it is to run on."""

    def pre_fork(arbiter: Any, worker: Any) -> None:
        if affinity.cpus:
            taken = (getattr(live, "gateway_cpu", None) for live in arbiter.WORKERS.values())
            worker.gateway_cpu = assign_cpu(affinity.cpus, taken)

    return pre_fork


def pin_this_process(cpu: int | None) -> None:
    """In the forked worker, before any thread starts: run on ``cpu`` only (None: as it is)."""
    if cpu is None:
        return
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError as exc:  # the CPU went away (hot-unplugged, cpuset changed): run unpinned
        log.warning("could not pin the worker to CPU %d: %s; it runs on any CPU", cpu, exc)


@dataclass
class ClaimedCpu:
    """A CPU a ``gateway worker`` holds for its life (the lock goes with the process, SIGKILL included)."""

    cpu: int
    lock: IO[str]


def claim_cpu(cpus: tuple[int, ...], directory: Path | None = None) -> ClaimedCpu | None:
    """For ``gateway worker``: the highest of ``cpus`` that no other worker of this machine holds.

    Delivery workers are separate processes, not one arbiter's children, so they agree through
    lock files (``flock``, in a directory of the user's own under the temporary directory): each
    takes the highest CPU whose lock is free and holds it until it exits, so the workers of a
    machine get a CPU each and a restarted one takes its predecessor's. ``gateway serve``'s arbiter
    hands out CPUs from the lowest, so on a machine running both they meet last. None when every
    CPU is held (more workers than CPUs: the rest run unpinned) or the directory cannot be used.
    """
    if directory is None:
        directory = Path(tempfile.gettempdir()) / f"gateway-cpus-{os.getuid()}"
    try:
        directory.mkdir(mode=0o700, exist_ok=True)
        for cpu in sorted(cpus, reverse=True):
            lock = (directory / f"cpu-{cpu}.lock").open("a", encoding="ascii")
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.close()
                continue
            return ClaimedCpu(cpu, lock)
    except OSError as exc:
        log.warning("could not claim a CPU in %s: %s; the worker runs on any CPU", directory, exc)
    return None


def cpu_quota(root: Path = CGROUP_ROOT, membership: str | None = None) -> float | None:
    """The CPU quota of this process's cgroup in cores, None if there is none (or it cannot be read).

    ``membership`` is the text of ``/proc/self/cgroup`` (read when None). cgroup v2: ``cpu.max``
    (``max 100000`` or ``QUOTA PERIOD``); v1: ``cpu.cfs_quota_us`` (-1: none) over
    ``cpu.cfs_period_us``. Looked up at the process's cgroup path under ``root``, then at
    ``root`` itself (a container's own cgroup is usually mounted there).
    """
    if membership is None:
        try:
            membership = Path("/proc/self/cgroup").read_text(encoding="ascii")
        except OSError:
            return None
    for line in membership.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        relative = path.strip().lstrip("/")
        if hierarchy == "0" and controllers == "":  # v2
            for directory in _candidates(root, relative):
                found, quota = _read_v2(directory / "cpu.max")
                if found:
                    return quota
        elif "cpu" in controllers.split(","):  # v1
            for directory in _candidates(root / controllers, relative) + _candidates(root / "cpu", relative):
                found, quota = _read_v1(directory)
                if found:
                    return quota
    return None


def _candidates(base: Path, relative: str) -> list[Path]:
    return [base / relative, base] if relative else [base]


def _read_v2(path: Path) -> tuple[bool, float | None]:
    """(whether the file was there, the quota in cores or None)."""
    try:
        quota, _, period = path.read_text(encoding="ascii").strip().partition(" ")
    except OSError:
        return False, None
    try:
        return True, None if quota == "max" else int(quota) / int(period or "100000")
    except (ValueError, ZeroDivisionError):
        return True, None


def _read_v1(directory: Path) -> tuple[bool, float | None]:
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text(encoding="ascii"))
        period = int((directory / "cpu.cfs_period_us").read_text(encoding="ascii"))
    except (OSError, ValueError):
        return False, None
    return True, None if quota < 0 or period <= 0 else quota / period


def _cpu_list(cpus: tuple[int, ...]) -> str:
    return ", ".join(str(cpu) for cpu in cpus)
