"""The baseline: how fast dramatiq drains a full Redis queue into a trivial actor, nothing else.

    python bench/delivery/drain.py --redis-url redis://127.0.0.1:PORT/0 --messages 20000 --threads 8 [--prefetch P]

Fills its own queue with ``--messages`` messages (the actor's argument is an int, like the
gateway's delivery id), then starts a dramatiq worker in this process with the same threads and
prefetch as the gateway's worker and times it from the first message handled to the last. Prints
one JSON line: messages, seconds, messages per second, the enqueue rate, the CPU seconds used.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time

import dramatiq
from dramatiq.brokers.redis import RedisBroker

QUEUE = "bench-baseline"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--prefetch", type=int, default=0, help="0: dramatiq's default (2 x threads)")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()

    broker = RedisBroker(url=args.redis_url)
    lock = threading.Lock()
    state = {"count": 0, "first": 0.0, "last": 0.0}
    done = threading.Event()

    def noop(_delivery_id: int) -> None:
        now = time.perf_counter()
        with lock:
            state["count"] += 1
            if state["count"] == 1:
                state["first"] = now
            if state["count"] == args.messages:
                state["last"] = now
                done.set()

    actor = dramatiq.Actor(
        noop, broker=broker, actor_name="bench.noop", queue_name=QUEUE, priority=0, options={"max_retries": 0}
    )
    broker.client.delete(f"dramatiq:{QUEUE}", f"dramatiq:{QUEUE}.msgs")
    started = time.perf_counter()
    for number in range(args.messages):
        actor.send(number)
    enqueue_seconds = time.perf_counter() - started

    cpu_before = os.times()
    worker = dramatiq.Worker(broker, queues={QUEUE}, worker_threads=args.threads)
    if args.prefetch:
        worker.queue_prefetch = args.prefetch
    worker.start()
    finished = done.wait(args.timeout)
    worker.stop(timeout=10_000)
    cpu_after = os.times()
    broker.close()
    seconds = state["last"] - state["first"] if finished else float("nan")
    print(
        json.dumps(
            {
                "messages": state["count"],
                "complete": finished,
                "seconds": seconds,
                "rate": (args.messages - 1) / seconds if finished and seconds > 0 else 0.0,
                "enqueue_rate": args.messages / enqueue_seconds,
                "threads": args.threads,
                "prefetch": worker.queue_prefetch,
                "cpu_seconds": (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system),
            }
        )
    )


if __name__ == "__main__":
    main()
