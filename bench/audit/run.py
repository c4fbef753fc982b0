"""bench/audit: the audit log's append rate, proof times at millions of entries, and `audit verify`
speed, each beside a baseline measured in the same run.

1. **append** (``append.py``): ``record()`` + commit per entry against a plain insert + commit of
   the same bytes, then the sequencer's integration rate; on SQLite and on PostgreSQL;
2. **proofs** (``proof_times.py``): inclusion and consistency proofs through
   ``gateway.audit.proofs`` in trees of ``--proof-sizes`` entries (built in bulk), against one
   raw ``SELECT`` of the same nodes;
3. **verify** (``verify_rate.py``): ``verify_log`` against plain SHA-256 hashing of the same
   entries (in memory; and read from the database).

Prints the figures and ratios and writes ``bench/results/audit-<timestamp>.json``. Every store is
throw-away: SQLite files in a temporary directory, PostgreSQL schemas dropped afterwards.

    .venv/bin/python bench/audit/run.py [--stores sqlite,postgresql] [--only append,proofs,verify]
        [--append-entries 2000] [--proof-sizes 1000000] [--proof-samples 3000] [--verify-entries 300000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import append
import proof_times
import verify_rate
from store import scratch_store

ROOT = Path(__file__).resolve().parent.parent.parent
PARTS = ("append", "proofs", "verify")
STORES = ("sqlite", "postgresql")


def _csv(kind: Callable[[str], Any], allowed: Sequence[str] | None = None) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
        values = [kind(part.strip().replace("_", "")) for part in text.split(",") if part.strip()]
        if allowed is not None and any(v not in allowed for v in values):
            raise argparse.ArgumentTypeError(f"choose from {', '.join(allowed)}")
        return values

    return parse


def parse_options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--stores", type=_csv(str, STORES), default=list(STORES), help="sqlite and/or postgresql (both)"
    )
    parser.add_argument("--only", type=_csv(str, PARTS), default=list(PARTS), help="append, proofs, verify (all)")
    parser.add_argument(
        "--database-url",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="PostgreSQL; each part works in a fresh schema, dropped afterwards",
    )
    parser.add_argument("--append-entries", type=int, default=2000, help="entries per side per round (2000)")
    parser.add_argument(
        "--proof-sizes",
        type=_csv(int),
        default=[1_000_000],
        help="tree sizes, comma-separated (1000000; 1000000,10000000 for the full figures)",
    )
    parser.add_argument("--proof-samples", type=int, default=3000, help="proofs of each kind per side (3000)")
    parser.add_argument("--verify-entries", type=int, default=300_000, help="entries in the verified log (300000)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported (3)")
    parser.add_argument("--seed", type=int, default=7, help="random leaves and sizes of the proofs (7)")
    parser.add_argument("--results-dir", type=Path, default=ROOT / "bench" / "results")
    return parser.parse_args(argv)


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "platform": platform.platform(),
    }


def busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores), from /proc/stat."""
    fields = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def phase(name: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one measurement, noting its wall time, its own CPU and the machine's (others share the cores)."""
    print(f"... {name}", file=sys.stderr, flush=True)
    wall, cpu, busy = time.perf_counter(), time.process_time(), busy_seconds()
    result = run()
    elapsed = time.perf_counter() - wall
    result["wall_s"] = round(elapsed, 1)
    result["own_cpu_cores"] = round((time.process_time() - cpu) / elapsed, 2)
    result["machine_busy_cores"] = round((busy_seconds() - busy) / elapsed, 2)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    started = datetime.now(UTC)
    results: dict[str, Any] = {
        "started": started.isoformat(),
        "machine": machine(),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(options).items()},
    }
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        workdir = Path(tmp)
        for kind in options.stores:
            if "append" in options.only:
                with scratch_store(kind, workdir, options.database_url, "append") as store:
                    results[f"append_{kind}"] = phase(
                        f"append on {kind}", lambda s=store: append.measure(s, options.append_entries, options.rounds)
                    )
            if "proofs" in options.only:
                for size in options.proof_sizes:
                    with scratch_store(kind, workdir, options.database_url, f"proofs{size}") as store:
                        results[f"proofs_{kind}_{size}"] = phase(
                            f"proofs on {kind}, {size:,} entries",
                            lambda s=store, n=size: proof_times.measure(
                                s, n, options.proof_samples, options.rounds, options.seed
                            ),
                        )
            if "verify" in options.only:
                with scratch_store(kind, workdir, options.database_url, "verify") as store:
                    results[f"verify_{kind}"] = phase(
                        f"verify on {kind}",
                        lambda s=store: verify_rate.measure(s, options.verify_entries, options.rounds),
                    )
    results["machine_after"] = machine()
    print(report(results))
    options.results_dir.mkdir(parents=True, exist_ok=True)
    out = options.results_dir / f"audit-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(results, indent=2, default=lambda v: v.hex() if isinstance(v, bytes) else str(v)))
    print(f"\nwritten to {out}")
    return 0


def report(results: dict[str, Any]) -> str:
    lines = [
        f"load average before / after: {results['machine']['load_average']} / "
        f"{results['machine_after']['load_average']} ({results['machine']['cpus']} cores, shared)"
    ]
    for key, value in results.items():
        if key.startswith("append_"):
            lines += [
                f"\nappend, {key.removeprefix('append_')}: entries/s, one entry per transaction "
                f"(machine busy {value['machine_busy_cores']} cores)",
                f"  gateway record()+commit  {value['gateway_per_s']:>10,.0f}",
                f"  baseline insert+commit   {value['baseline_per_s']:>10,.0f}",
                f"  ratio                    {value['ratio']:>10.2f}",
                f"  sequencer integration    {value['sequencer_per_s']:>10,.0f} entries/s",
            ]
        elif key.startswith("proofs_"):
            _, kind, size = key.split("_")
            lines += [
                f"\nproofs, {kind}, {int(size):,} entries (built in {value['build_s']} s, {value['nodes']:,} nodes; "
                f"machine busy {value['machine_busy_cores']} cores)",
                "                  gateway/s  p50 us  p99 us  CPU us | baseline/s  p50 us  p99 us  CPU us | ratio",
            ]
            for proof in ("inclusion", "consistency"):
                g, b = value[f"gateway_{proof}"], value[f"baseline_{proof}"]
                columns = [
                    f"{side['per_s']:>10,.0f} {side['p50_us']:>7,.0f} {side['p99_us']:>7,.0f} {side['cpu_us']:>7,.0f}"
                    for side in (g, b)
                ]
                lines.append(f"  {proof:<14}{columns[0]} |{columns[1]} | {value[f'{proof}_ratio']:.2f}")
            cost = value["verify_us"]
            lines.append(
                f"  nodes per proof: {value['nodes_per_inclusion']:.1f} / {value['nodes_per_consistency']:.1f}; "
                f"verifying one costs {cost['inclusion']:.0f} / {cost['consistency']:.0f} us"
            )
        elif key.startswith("verify_"):
            lines += [
                f"\naudit verify, {key.removeprefix('verify_')}: {value['entries']:,} entries, "
                f"{value['checkpoints']} checkpoints (machine busy {value['machine_busy_cores']} cores)",
                f"  gateway verify_log       {value['gateway_per_s']:>12,.0f} entries/s",
                f"  sha256, in memory        {value['hash_only_per_s']:>12,.0f} entries/s  "
                f"ratio {value['ratio_to_hash_only']:.3f}",
                f"  read + sha256            {value['read_and_hash_per_s']:>12,.0f} entries/s  "
                f"ratio {value['ratio_to_read_and_hash']:.2f}",
            ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
