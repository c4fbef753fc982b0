"""The commands of docs/audit.md, *Verifying*, run as printed (in a shell) against `gateway serve`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from gateway.settings import PROJECT_ROOT

pytestmark = pytest.mark.slow


def documented_commands() -> list[str]:
    text = (PROJECT_ROOT / "docs" / "audit.md").read_text(encoding="utf-8")
    section = text[text.index("## Verifying\n") : text.index("## What an insider")]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_the_documented_verify_commands_work_as_printed(gateway_url: str, served_home: Path, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "GATEWAY_DATA_DIR": str(served_home / "data"),
        "GATEWAY_KEYS_DIR": str(served_home / "keys"),
    }
    subprocess.run([sys.executable, "-m", "gateway", "audit", "sequence"], env=env, check=True, capture_output=True)
    assert requests.get(f"{gateway_url}/log/checkpoints/latest", timeout=5).status_code == 200
    commands = documented_commands()
    assert len(commands) == 4 and commands[0].startswith("gateway audit sequence")
    outputs = []
    for command in commands:
        line = command.replace("http://127.0.0.1:8080", gateway_url).replace(
            "gateway ", f"{sys.executable} -m gateway ", 1
        )
        done = subprocess.run(["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        outputs.append(done.stdout)
    assert (tmp_path / "kept-checkpoint.txt").read_text().startswith("graduate-exchange-gateway/audit/v1\n")
    assert outputs[2].splitlines()[-1].endswith(" kept: OK") and " 1 kept" in outputs[2]
    answer = json.loads(outputs[3].splitlines()[-1])
    assert answer["ok"] is True and answer["kept"] == 1 and answer["published"] >= 1
