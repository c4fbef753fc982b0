"""The optional load generator ``--load wrk``: the same envelopes, sent by wrk through ``wrk.lua``.

wrk is duration-bound: it runs ``seconds`` and reports the requests answered in that time. For
the gateway each envelope is sent at most once; a wrk thread that runs out of envelopes stops,
which makes the rate meaningless, so it is reported as a failure (give more ``--envelopes`` or
fewer ``--wrk-seconds``). The baseline cycles through its envelopes. wrk counts HTTP statuses of
400 and above and socket errors as failures; it does not look at response bodies.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from load import LoadResult

SCRIPT = Path(__file__).resolve().with_name("wrk.lua")
SEPARATOR = b"\n<!--bench-envelope-separator-->\n"


def available() -> bool:
    return shutil.which("wrk") is not None


def drive(
    host: str,
    port: int,
    path: str,
    bodies: Sequence[bytes],
    connections: int,
    seconds: float,
    *,
    once: bool,
    wrk_threads: int = 2,
) -> LoadResult:
    """Send ``bodies`` with wrk for ``seconds``; raises ``RuntimeError`` when wrk fails."""
    threads = min(wrk_threads, connections)
    with tempfile.NamedTemporaryFile(prefix="bench-envelopes-", suffix=".bin") as pool:
        pool.write(b"".join(body + SEPARATOR for body in bodies))
        pool.flush()
        command = [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "30s",
            "-s",
            str(SCRIPT),
            f"http://{host}:{port}{path}",
            "--",
            pool.name,
            str(threads),
            "once" if once else "cycle",
        ]
        before = _children_cpu()
        finished = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if finished.returncode != 0:
        raise RuntimeError(f"wrk failed ({finished.returncode}): {finished.stderr.strip()}")
    return _result(_last_json_line(finished.stdout), connections, _children_cpu() - before)


def _result(summary: dict[str, int], connections: int, client_cpu_s: float) -> LoadResult:
    failures = summary["status_errors"] + summary["socket_errors"]
    notes = []
    if failures:
        notes.append(f"{failures} wrk errors (statuses >= 400 or socket errors)")
    if summary["exhausted_threads"]:
        failures += 1  # the rate is void, whatever the answers were
        notes.append(f"{summary['exhausted_threads']} wrk thread(s) ran out of envelopes before the time was up")
    return LoadResult(
        generator="wrk",
        connections=connections,
        requests=summary["requests"],
        failures=failures,
        elapsed_s=summary["duration_us"] / 1e6,
        client_cpu_s=client_cpu_s,
        p50_s=summary["p50_us"] / 1e6,
        p99_s=summary["p99_us"] / 1e6,
        first_failure="; ".join(notes) or None,
    )


def _last_json_line(output: str) -> dict[str, int]:
    for line in reversed(output.splitlines()):
        if line.startswith("{"):
            parsed: dict[str, int] = json.loads(line)
            return parsed
    raise RuntimeError(f"wrk printed no result line:\n{output}")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
