"""The servers under test: start them on a free loopback port, wait until they answer, account
their CPU time, stop them.

Each server is a gunicorn master with its workers. It runs in its own session so that a Ctrl-C in
the terminal reaches only the benchmark, which then stops the servers itself (master first, which
stops its workers; anything left is killed by pid).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    """A started server process (the gunicorn master) and where its output goes."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid


def free_port() -> int:
    """A TCP port free on the loopback address right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def start(name: str, command: Sequence[str], env: Mapping[str, str], port: int, log_path: Path) -> Server:
    """Start ``command`` with its output in ``log_path``; the caller must :func:`stop` it."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            list(command),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Server(name, process, port, log_path)


def wait_ready(server: Server, path: str, timeout_s: float = 30.0) -> None:
    """Return once ``GET path`` answers 200; raises ``RuntimeError`` with the log tail otherwise."""
    url = f"http://{LOOPBACK}:{server.port}{path}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.process.returncode}:\n{log_tail(server)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{server.name} did not answer {url} within {timeout_s:.0f} s:\n{log_tail(server)}")


def worker_class(server: Server, timeout_s: float = 5.0) -> str | None:
    """The worker class gunicorn logged at start-up (``Using worker: gthread``), or None if not seen.

    gunicorn prints that line before it forks its workers; once the server answers it is in the log.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        match = _USING_WORKER.search(server.log_path.read_text(encoding="utf-8", errors="replace"))
        if match or time.monotonic() > deadline:
            return match.group(1) if match else None
        time.sleep(0.1)


_USING_WORKER = re.compile(r"Using worker: (?:<class ')?([\w.]+)")


def log_tail(server: Server, lines: int = 20) -> str:
    text = server.log_path.read_text(encoding="utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def stop(server: Server, grace_s: float = 10.0) -> None:
    """Stop the master gracefully, then kill it and any worker still alive, by pid."""
    workers = worker_pids(server.pid)
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    for pid in workers:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def worker_pids(master: int) -> list[int]:
    """The pids descended from ``master``: gunicorn's workers, and any process they start (a
    serving layer may add helper processes; their CPU is the server's too)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _read_stat(int(entry.name))
            if stat is not None:
                parents.setdefault(int(stat[1]), []).append(int(entry.name))
    found, frontier = [], [master]
    while frontier:
        children = parents.get(frontier.pop(), [])
        found.extend(children)
        frontier.extend(children)
    return sorted(found)


def cpu_seconds(master: int) -> dict[int, float]:
    """User plus system CPU seconds so far of ``master`` and each of its workers, by pid."""
    return processes_cpu_seconds((master, *worker_pids(master)))


def processes_cpu_seconds(pids: Iterable[int]) -> dict[int, float]:
    """User plus system CPU seconds so far of each of ``pids`` that is a local process."""
    used = {}
    for pid in pids:
        stat = _read_stat(pid)
        if stat is not None:
            used[pid] = (int(stat[11]) + int(stat[12])) / _TICKS
    return used


def thread_cpu_seconds(master: int) -> dict[str, float]:
    """User plus system CPU seconds so far of the threads of ``master``'s descendants, summed by the
    thread's name as the kernel shows it (``/proc/<pid>/task/<tid>/comm``; the gateway names its
    threads there: ``gateway.monitoring.threads``); a process's main thread (the gunicorn
    worker's event loop) is ``main``. A thread that has ended since is missing from the sum."""
    used: dict[str, float] = {}
    for pid in worker_pids(master):
        try:
            tasks = [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            continue
        for tid in tasks:
            try:
                name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
            except OSError:
                continue  # ended meanwhile
            fields = _read_stat(pid, tid)
            if fields is None:
                continue
            key = "main" if tid == pid else name
            used[key] = used.get(key, 0.0) + (int(fields[11]) + int(fields[12])) / _TICKS
    return used


def resident_mb(master: int) -> dict[int, float]:
    """The resident memory (VmRSS) of ``master``'s descendants, in MB, by pid."""
    sizes = {}
    for pid in worker_pids(master):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                sizes[pid] = int(line.split()[1]) / 1024
    return sizes


def machine_busy_seconds() -> float:
    """CPU seconds all cores together have spent busy (not idle, not waiting for I/O) since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / _TICKS


def _read_stat(pid: int, tid: int | None = None) -> list[str] | None:
    """The fields of /proc/<pid>/stat (with ``tid``, of its thread's /proc/<pid>/task/<tid>/stat)
    after the command name: [state, ppid, ...]; None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()
