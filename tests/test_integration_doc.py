"""The examples of docs/integration.md marked *(tested)* run as printed against a served gateway.

Each is a fenced block right after a ``<!-- test:NAME -->`` comment. The shell block runs with bash
in the gateway's home (the operator's side and the agency's files side by side); the Python blocks
run one after another in one namespace, as a reader would paste them, with only ``gateway_url``
pointed at the served gateway.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.settings import PROJECT_ROOT

DOC = PROJECT_ROOT / "docs" / "integration.md"
BLOCK = re.compile(r"<!-- test:(?P<name>[\w-]+) -->\n```(?P<language>\w+)\n(?P<code>.*?)\n```", re.DOTALL)
SHELL_BLOCKS = ("participants-add", "keys-issue", "csr")
PYTHON_BLOCKS = ("sdk-send", "zeep-plugins", "pull", "status")


def blocks() -> dict[str, tuple[str, str]]:
    return {m["name"]: (m["language"], m["code"]) for m in BLOCK.finditer(DOC.read_text(encoding="utf-8"))}


def test_the_tested_blocks_are_the_ones_this_test_runs() -> None:
    found = blocks()
    assert set(found) == {*SHELL_BLOCKS, *PYTHON_BLOCKS}
    assert all(found[name][0] == "sh" for name in SHELL_BLOCKS)
    assert all(found[name][0] == "python" for name in PYTHON_BLOCKS)
    for name in PYTHON_BLOCKS:
        compile(found[name][1], f"docs/integration.md:{name}", "exec")


@pytest.mark.slow
def test_the_integration_examples_run_as_printed(
    gateway_url: str, served_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    found = blocks()
    (served_home / "examples").symlink_to(PROJECT_ROOT / "examples", target_is_directory=True)
    (served_home / ".venv").symlink_to(Path(sys.executable).parent.parent, target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # the `gateway` command
    shell = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", "\n".join(found[name][1] for name in SHELL_BLOCKS)],
        cwd=served_home,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert shell.returncode == 0, shell.stderr
    assert "registered 12110108400000015A" in shell.stdout  # participants add
    assert "keys/participants/12110108400000015A/key.pem" in shell.stdout  # keys issue
    assert "registered " in shell.stdout and "12110108400000008J" in shell.stdout  # the CSR's certificate

    monkeypatch.chdir(served_home)
    namespace: dict[str, Any] = {}
    for name in PYTHON_BLOCKS:
        source = re.sub(r'^gateway_url = ".*"$', f'gateway_url = "{gateway_url}"', found[name][1], flags=re.M)
        exec(compile(source, f"docs/integration.md:{name}", "exec"), namespace)  # noqa: S102 (our own doc)

    assert namespace["sent"].receipt.status == "accepted"
    assert namespace["checked"].status == "accepted"
    assert {r.status for r in namespace["results"]} == {"acknowledged"} and len(namespace["results"]) >= 2
    assert set(namespace["proof"].delivered) == {"11110000000000001R"}
    assert namespace["proof"].message_id == namespace["sent"].message_id
    printed = capsys.readouterr().out
    assert "refused" not in printed and "accepted" in printed


def test_every_test_the_stack_matrix_names_exists() -> None:
    text = DOC.read_text(encoding="utf-8")
    matrix = text[text.index("**Each stack, checked.**") : text.index("Working systems to read")]
    named = set(re.findall(r"`([\w/]+\.py)::(test_\w+)`", matrix))
    assert len(named) >= 8
    for path, name in named:
        source = PROJECT_ROOT / "tests" / path
        assert source.exists(), path
        assert f"def {name}(" in source.read_text(encoding="utf-8"), f"{path}::{name}"
