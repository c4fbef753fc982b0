"""The gateway's threads named where the operating system shows them: top's and ps's thread views, py-spy.

Python up to 3.13 names its threads for itself only (``threading.Thread.name``): the kernel sees
every thread of a worker process under the process's name, so an operator's top on a busy
``gateway serve`` worker could not tell the group commit's writer from the request threads, and
bench/intake could not say how a worker's CPU divides between them (where the writer's share
grows with the worker processes: bench/intake/README.md, sixteenth pass).

:func:`name_thread` gives the calling thread its name with setproctitle's ``setthreadtitle``
(on Linux the kernel's ``comm`` of the thread, 15 bytes at most; elsewhere, where the platform
has no such name, nothing happens: the name is a help for reading, never a condition of running).
With setproctitle installed gunicorn also titles its processes (``proc_name``, ``gateway serve``).
"""

from __future__ import annotations

from setproctitle import setthreadtitle

COMM_BYTES = 15  # what Linux keeps of a thread's name: TASK_COMM_LEN, 16, less the terminating NUL

WRITER = "gateway-writer"  # the intake's group commit (gateway.intake.writer)
REQUEST = "gateway-request"  # the serving layer's request threads (gateway.serving.bridge)
SWEEP = "delivery-sweep"  # the outbox sweep, the audit sequencer, the retention purge (gateway.delivery.service)
AUDIT_VERIFY = "audit-verify"  # an auditor's verification run (gateway.auditor.integrity)


def name_thread(name: str) -> None:
    """Give the calling thread ``name`` where the operating system shows it (cut to 15 bytes on Linux)."""
    setthreadtitle(name)  # where the platform refuses it, setproctitle lets it be
