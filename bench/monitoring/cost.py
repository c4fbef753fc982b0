"""What the metrics and the JSON log line cost per message, beside a baseline without them.

    .venv/bin/python bench/monitoring/cost.py [--messages 20000]

Per message the intake runs 14 stages: the baseline calls 14 no-op stages; the measured run calls
them through ``TimedStage`` (one histogram observation each), counts the message
(``count_message``: a counter and a histogram) and writes the request's JSON line (to /dev/null),
in prometheus-client's multiprocess mode as under ``gateway serve``. Prints microseconds per
message (CPU time of this process, best of 5 rounds).
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from typing import Any

STAGES = 14


def noop(inbound: Any, session: Any) -> None:
    return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20_000)
    args = parser.parse_args()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="gateway-metrics-bench-")
    from gateway.monitoring import events
    from gateway.monitoring.instruments import TimedStage, count_message

    events.configure()
    events.log.handlers[0] = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115
    events.log.handlers[0].setFormatter(logging.Formatter("%(message)s"))
    bare = [noop] * STAGES
    timed = [TimedStage(noop, f"stage_{i}") for i in range(STAGES)]

    def baseline() -> None:
        for stage in bare:
            stage(None, None)

    def metrics_only() -> None:
        for stage in timed:
            stage(None, None)
        count_message("DestinationRegistration", None, 0.004)

    def metrics_and_log() -> None:
        metrics_only()
        events.emit(
            "request",
            method="POST",
            path="/soap",
            status=200,
            client="127.0.0.1",
            duration_ms=4.2,
            message_id="926ecfa2-a446-4625-978a-00b1dc99f820",
            sender="12110108400000008J",
            service="DestinationRegistration",
            outcome="accepted",
        )

    results = {}
    for name, run in (("baseline", baseline), ("metrics", metrics_only), ("metrics+log", metrics_and_log)):
        run()  # create the instruments and files first
        best = float("inf")
        for _round in range(5):
            started = time.process_time()
            for _ in range(args.messages):
                run()
            best = min(best, (time.process_time() - started) / args.messages * 1e6)
        results[name] = best
    for name, micros in results.items():
        extra = "" if name == "baseline" else f"   (+{micros - results['baseline']:.1f} µs over the baseline)"
        print(f"{name:12} {micros:7.1f} µs per message{extra}")


if __name__ == "__main__":
    main()
