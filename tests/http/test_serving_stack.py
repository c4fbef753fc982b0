"""``gateway serve`` parses with gunicorn_h1c and loops on uvloop, or does not start (one line)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli.serve import gunicorn_options
from gateway.settings import Settings


def test_the_parser_and_loop_are_named_not_left_to_auto(settings: Settings) -> None:
    options = gunicorn_options(settings)
    assert (options["http_parser"], options["asgi_loop"]) == ("fast", "uvloop")


def test_gunicorn_reads_what_serving_stack_problem_found() -> None:
    # gunicorn caches its gunicorn_h1c look-up on the class asked and reads it from ASGIProtocol;
    # in a fresh interpreter, asked through the gateway's function, the cache must be on ASGIProtocol.
    code = (
        "from gateway.serving.worker import GuardedProtocol, serving_stack_problem\n"
        "from gunicorn.asgi.protocol import ASGIProtocol\n"
        "assert serving_stack_problem() is None\n"
        "assert ASGIProtocol._h1c_has_limits and ASGIProtocol._h1c_parse_errors\n"
        "assert '_h1c_available' not in vars(GuardedProtocol)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize(
    ("module", "message"),
    [
        ("gunicorn_h1c", "Error: gunicorn_h1c (gunicorn's C HTTP parser) is not installed"),
        ("uvloop", "Error: uvloop (the serving event loop) is not installed"),
    ],
)
def test_serve_does_not_start_without_them(home: Path, tmp_path: Path, module: str, message: str) -> None:
    # A module of that name that cannot be found, ahead of the installed one.
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\n"
        "class Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name == {module!r}:\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Hide())\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path),
        "GATEWAY_DATA_DIR": str(home / "data"),
        "GATEWAY_KEYS_DIR": str(home / "keys"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "serve"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert done.stdout == ""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(message), done.stderr[-2000:]


def test_a_serving_worker_hands_the_interpreter_lock_over_quickly(monkeypatch: pytest.MonkeyPatch) -> None:
    # The group commit's writer thread must win the interpreter lock back after every statement.
    import sys

    from gunicorn.workers.gasgi import ASGIWorker

    from gateway.serving.worker import SWITCH_INTERVAL_SECONDS, GatewayWorker

    before = sys.getswitchinterval()
    monkeypatch.setattr(ASGIWorker, "init_process", lambda self: None)
    try:
        GatewayWorker.init_process(object.__new__(GatewayWorker))
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_SECONDS)
        assert before > SWITCH_INTERVAL_SECONDS
    finally:
        sys.setswitchinterval(before)
