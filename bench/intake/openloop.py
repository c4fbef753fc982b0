"""The open-loop load generator (``--rate N``): requests offered at fixed times, whatever the answers.

Request ``i`` is due at ``t0 + i / rate``. A pool of connection threads takes the requests in
order; a thread that is early sleeps until its request is due, one that is late (every connection
busy with slower answers) sends at once. Latency is measured **from the time the request was
due**, not from when it was sent, so a server that falls behind is charged for the queue it caused
(no coordinated omission: a closed-loop generator would simply send less and report the latency of
the few requests it sent). The pool must be large enough that connections are not the limit:
``max send lag`` in the result says how late the last-sent requests left the client.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence

from load import Acceptance, LoadResult, _close, _own_cpu, _send_and_record, _Shared


def drive_at_rate(
    host: str,
    port: int,
    path: str,
    bodies: Sequence[bytes],
    connections: int,
    accept: Acceptance,
    rate: float,
    seconds: float,
    after: Sequence[int | None] = (),
) -> LoadResult:
    """Offer ``rate`` requests a second for ``seconds`` (at most ``len(bodies)`` requests, each once);
    ``after`` as for ``load.drive`` (a request waits for the answer it depends on, late if need be)."""
    count = min(len(bodies), max(1, round(rate * seconds)))
    result = LoadResult(generator="open-loop", connections=connections, offered_rate=rate)
    shared = _Shared(
        bodies[:count],
        time.monotonic() + seconds + 600.0,
        accept,
        result,
        itertools.count().__next__,
        after=after[:count],
    )
    started = time.perf_counter() + 0.05  # every thread is up before the first request is due
    lags: list[float] = []
    threads = [
        threading.Thread(target=_connection, args=(host, port, path, shared, started, rate, lags), daemon=True)
        for _ in range(connections)
    ]
    cpu_before = _own_cpu()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.elapsed_s = time.perf_counter() - started
    result.client_cpu_s = _own_cpu() - cpu_before
    result.max_send_lag_s = max(lags, default=0.0)
    return result


def _connection(
    host: str, port: int, path: str, shared: _Shared, started: float, rate: float, lags: list[float]
) -> None:
    head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: text/xml; charset=utf-8\r\n"
    latencies: list[float] = []
    worst_lag = 0.0
    sock = None
    try:
        while (index := shared.next_index()) < len(shared.bodies):
            body = shared.bodies[index]
            request = f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
            due = started + index / rate
            if (wait := due - time.perf_counter()) > 0:
                time.sleep(wait)
            shared.wait_for(index)
            worst_lag = max(worst_lag, time.perf_counter() - due)
            sock = _send_and_record(shared, sock, host, port, request, index, due, latencies)
    finally:
        _close(sock)
        with shared.lock:
            shared.result.latencies_s.extend(latencies)
            lags.append(worst_lag)
