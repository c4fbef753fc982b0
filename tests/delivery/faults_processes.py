"""The processes a fault-injection test starts, kills and restarts: only those, tracked by pid.

Each process runs in a session of its own, so that killing it reaches exactly what it started
(``gateway serve`` is a gunicorn master with its workers) and nothing else; a Ctrl-C in the
terminal reaches only pytest, whose ``finally`` then stops them all.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Started:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Processes:
    """Every process started through it, by name; :meth:`stop_all` belongs in a ``finally``."""

    logs_dir: Path
    started: dict[str, Started] = field(default_factory=dict)
    _runs: dict[str, int] = field(default_factory=dict)

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> Started:
        """Start ``argv`` as ``name`` (which must not be running), its output in a log of its own."""
        if name in self.started and self.started[name].alive():
            raise RuntimeError(f"{name} is already running (pid {self.started[name].pid})")
        run = self._runs[name] = self._runs.get(name, 0) + 1
        log_path = self.logs_dir / f"{name}.{run}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                list(argv),
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started[name] = Started(name, process, log_path)
        return self.started[name]

    def kill(self, name: str) -> None:
        """SIGKILL ``name`` and every process of its session (a gunicorn master and its workers)."""
        started = self.started[name]
        _signal_group(started, signal.SIGKILL)
        started.process.wait(timeout=10)

    def freeze(self, name: str) -> None:
        """SIGSTOP ``name``'s group: it holds its connections open and answers nothing (a hung server)."""
        _signal_group(self.started[name], signal.SIGSTOP)

    def thaw(self, name: str) -> None:
        _signal_group(self.started[name], signal.SIGCONT)

    def stop(self, name: str, grace: float = 10.0) -> None:
        """SIGTERM ``name``, then SIGKILL what is left of its session after ``grace`` seconds."""
        started = self.started[name]
        _signal_group(started, signal.SIGTERM)
        _signal_group(started, signal.SIGCONT)  # a frozen process takes SIGTERM only once thawed
        try:
            started.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal_group(started, signal.SIGKILL)
            started.process.wait(timeout=10)

    def stop_all(self) -> None:
        """Stop every process started here, also after a failure; never raises."""
        for name in reversed(list(self.started)):
            try:
                self.stop(name, grace=5.0)
            except Exception as exc:  # keep going: the others must be stopped too
                print(f"could not stop {name} (pid {self.started[name].pid}): {exc}")

    def logs(self, lines: int = 30) -> str:
        """The tail of every log written, for a failure message."""
        parts = []
        for path in sorted(self.logs_dir.glob("*.log")):
            text = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name} ---\n" + "\n".join(text))
        return "\n".join(parts)


def _signal_group(started: Started, signum: int) -> None:
    """Signal the process group that ``started`` leads, if it has not been reaped yet.

    The process leads its own session (start_new_session), so its group id is its pid. Until we
    reap it (``poll``/``wait``) that pid cannot be reused, so the signal reaches only what we started.
    """
    if started.process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(started.pid, signum)


def wait_until(
    condition: Callable[[], object], timeout: float, what: str, explain: Callable[[], str] = lambda: ""
) -> None:
    """Poll ``condition`` until it is true; after ``timeout`` seconds fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{explain()}")
        time.sleep(0.2)
