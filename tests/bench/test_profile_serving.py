"""bench/intake/profile_serving.py runs, answers every request 200 and prints both applications' figures."""

from __future__ import annotations

import re
import subprocess
import sys

from gateway.settings import PROJECT_ROOT


def test_the_serving_profile_prints_the_gateway_beside_bare_flask() -> None:
    script = PROJECT_ROOT / "bench" / "intake" / "profile_serving.py"
    done = subprocess.run(
        [sys.executable, str(script), "--requests", "30", "--rounds", "2"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    figures = dict(re.findall(r"^(gateway|bare Flask) +CPU a request: .* \(median (\d+)\)$", done.stdout, re.M))
    assert set(figures) == {"gateway", "bare Flask"}, done.stdout
    ratio = float(re.search(r"^gateway / bare Flask: ([\d.]+)$", done.stdout, re.M).group(1))  # type: ignore[union-attr]
    # the gateway signs its answer and writes a line: never less than a view that echoes the body
    assert ratio > 1 and int(figures["gateway"]) > int(figures["bare Flask"])
