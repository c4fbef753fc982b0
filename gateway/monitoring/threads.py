"""The gateway's threads named where the operating system shows them: top's and ps's thread views, py-spy.

Python names its threads for itself only (``threading.Thread.name``, up to 3.13): the kernel
sees every thread of a worker process under the process's name, so an operator's top on a
busy ``gateway serve`` worker could not tell the group commit's writer from the request threads, and
bench/intake could not say how a worker's CPU divides between them (where the writer's share
grows with the worker processes: bench/intake/README.md, sixteenth pass).

:func:`name_thread` writes the name to ``/proc/self/task/<tid>/comm`` (Linux; at most 15 bytes,
what the kernel keeps). Elsewhere, or where ``/proc`` is not writable, it does nothing: the name
is a help for reading, never a condition of running. No library of this project's does it
(setproctitle names the process and, on Linux, can set one thread's name only through its own
C extension, which the gateway does not otherwise need).

The names the gateway gives (``THREAD_NAMES``) are what bench/intake reports by.
"""

from __future__ import annotations

import threading

COMM_BYTES = 15  # the kernel's TASK_COMM_LEN, 16, less the terminating NUL

WRITER = "gateway-writer"  # the intake's group commit (gateway.intake.writer)
REQUEST = "gateway-request"  # the serving layer's request threads (gateway.serving.bridge)
SWEEP = "delivery-sweep"  # the outbox sweep, the audit sequencer, the retention purge (gateway.delivery.service)
AUDIT_VERIFY = "audit-verify"  # an auditor's verification run (gateway.auditor.integrity)
THREAD_NAMES = (WRITER, REQUEST, SWEEP, AUDIT_VERIFY)


def name_thread(name: str) -> None:
    """Give the calling thread ``name`` (cut to 15 bytes of UTF-8) where the operating system shows it."""
    data = name.encode("utf-8")[:COMM_BYTES]
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/comm", "wb") as comm:
            comm.write(data)
    except OSError:
        pass  # not Linux, /proc not mounted or read-only: the thread keeps the process's name
