"""The processes of a benchmark run: started in sessions of their own, accounted, stopped by pid.

Each one leads its own session, so a Ctrl-C in the terminal reaches only the benchmark (which then
stops them), stopping one reaches its children too (gunicorn's workers), and its CPU time is the
sum over the processes of its session.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_tail(self, lines: int = 25) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def start(name: str, argv: Sequence[str], env: Mapping[str, str], log_path: Path, cwd: Path | None = None) -> Process:
    """Start ``argv`` in a session of its own; the caller must :func:`stop` it."""
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Process(name, popen, log_path)


def stop(process: Process, grace: float = 15.0) -> None:
    """SIGTERM the process's group, then SIGKILL it if it is still there after ``grace`` seconds."""
    _signal_group(process, signal.SIGTERM)
    try:
        process.popen.wait(grace)
    except subprocess.TimeoutExpired:
        _signal_group(process, signal.SIGKILL)
        process.popen.wait(10)


def _signal_group(process: Process, signum: int) -> None:
    # Until it is reaped, the leader's pid (= its group id) cannot be reused: the signal reaches
    # only what this run started.
    if process.popen.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)


def wait_for(process: Process, ready: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Return once ``ready()``; raises ``RuntimeError`` with the log tail when the process exits or time is up."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited with {process.popen.returncode}:\n{process.log_tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{process.name}: no {what} within {timeout:.0f} s:\n{process.log_tail()}")
        time.sleep(0.1)


def answers(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    return check


def session_cpu_seconds(leader: int) -> float:
    """User plus system CPU seconds of the live processes in ``leader``'s session."""
    used = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _read_stat(int(entry.name))
            if stat is not None and int(stat[3]) == leader:
                used += (int(stat[11]) + int(stat[12])) / _TICKS
    return used


def machine_busy_seconds() -> float:
    """CPU seconds all cores together have spent busy (not idle, not waiting for I/O) since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / _TICKS


def _read_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name: [state, ppid, pgrp, session, ...]."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MB (VmRSS), 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0
