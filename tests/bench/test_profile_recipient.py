"""bench/delivery/profile_recipient.py runs, has every delivery acknowledged and prints both recipients' figures."""

from __future__ import annotations

import re
import subprocess
import sys

from gateway.settings import PROJECT_ROOT


def test_the_recipient_profile_prints_the_sdk_recipient_beside_bare_flask() -> None:
    script = PROJECT_ROOT / "bench" / "delivery" / "profile_recipient.py"
    done = subprocess.run(
        [sys.executable, str(script), "--deliveries", "20", "--rounds", "2"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    figures = dict(re.findall(r"^(SDK recipient|bare Flask) +CPU a delivery: .* \(median (\d+)\)$", done.stdout, re.M))
    assert set(figures) == {"SDK recipient", "bare Flask"}, done.stdout
    assert re.search(r"^20 deliveries of [\d.]+ KB on average$", done.stdout, re.M), done.stdout
    ratio = float(re.search(r"^SDK recipient / bare Flask: ([\d.]+)$", done.stdout, re.M).group(1))  # type: ignore[union-attr]
    # the SDK verifies a signature and a chain the bare view never looks at
    assert ratio > 1 and int(figures["SDK recipient"]) > int(figures["bare Flask"])
