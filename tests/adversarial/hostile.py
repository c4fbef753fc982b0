"""Helpers of the adversarial suite: the corpus, posting through POST /soap, and watching for opens.

Everything goes through the real HTTP interface, so the suite holds whatever the intake pipeline
looks like inside. The corpus is data (``corpus/*.xml``, expected codes in ``corpus/manifest.csv``);
``@FIFO@``, ``@CANARY@`` and ``@MISSING@`` in a file stand for paths each test makes for itself.
"""

from __future__ import annotations

import csv
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from lxml import etree
from sqlalchemy import select

from gateway.audit.entries import decode
from gateway.audit.models import AuditEntry
from gateway.messages.models import Message
from gateway.store.db import transaction

CORPUS = Path(__file__).parent / "corpus"
GW = {"gw": "urn:gradex:gateway:1"}
CANARY_TEXT = "CANARY-7f3a9c1e-the-gateway-must-never-read-this"


@dataclass(frozen=True)
class Case:
    name: str
    code: str
    what: str

    def data(self, paths: Paths) -> bytes:
        return paths.fill((CORPUS / f"{self.name}.xml").read_bytes())


def manifest() -> list[Case]:
    with (CORPUS / "manifest.csv").open(newline="", encoding="utf-8") as handle:
        return [Case(row["file"], row["code"], row["what"]) for row in csv.DictReader(handle)]


@dataclass(frozen=True)
class Paths:
    """A FIFO, a canary file and a path that does not exist, in a folder of the test's own."""

    fifo: Path
    canary: Path
    missing: Path

    @classmethod
    def make(cls, folder: Path) -> Paths:
        folder.mkdir(parents=True, exist_ok=True)
        paths = cls(folder / "fifo", folder / "canary.txt", folder / "no-such-file.dtd")
        os.mkfifo(paths.fifo)
        paths.canary.write_text(f'<!ENTITY leak "{CANARY_TEXT}">{CANARY_TEXT}')
        return paths

    def fill(self, data: bytes) -> bytes:
        for marker, path in ((b"@FIFO@", self.fifo), (b"@CANARY@", self.canary), (b"@MISSING@", self.missing)):
            data = data.replace(marker, str(path).encode())
        return data


class FifoWatch:
    """Notices whether anyone opens ``fifo`` for reading while it watches.

    Opening a FIFO for writing without blocking succeeds only while a reader has it open; a reader
    that opened it blocks until a writer comes, so the watcher's own open also sets it free (it
    then reads end-of-file). A gateway that opened the FIFO is therefore caught, and never hangs.
    """

    def __init__(self, fifo: Path) -> None:
        self.fifo = fifo
        self.opened = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                descriptor = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: nobody is reading
                time.sleep(0.002)
                continue
            self.opened = True
            os.close(descriptor)

    def __enter__(self) -> FifoWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.05)  # an open that happens just as the request ends is still seen
        self._stop.set()
        self._thread.join(timeout=5)


@dataclass(frozen=True)
class Outcome:
    status: int
    code: str | None
    faultcode: str | None
    text: str
    seconds: float


def outcome(status: int, body: bytes, seconds: float) -> Outcome:
    try:
        root = etree.fromstring(body)
    except etree.XMLSyntaxError:
        return Outcome(status, None, None, body.decode(errors="replace"), seconds)
    return Outcome(
        status,
        root.findtext(".//gw:FaultDetail/gw:Code", namespaces=GW),
        root.findtext(".//faultcode"),
        body.decode(errors="replace"),
        seconds,
    )


def post(client: FlaskClient, data: bytes, content_type: str = "text/xml; charset=utf-8") -> Outcome:
    """POST through Flask's test client; ``seconds`` is the CPU time the gateway spent on it.

    The test client runs the request in this thread, so the thread's CPU time is the gateway's
    work, and a bound on it holds however loaded the machine is.
    """
    started = time.thread_time()
    response = client.post("/soap", data=data, content_type=content_type)
    return outcome(response.status_code, response.data, time.thread_time() - started)


def stored_message_ids(app: Flask) -> list[str]:
    with transaction(app.extensions["gateway"].sessions) as session:
        return list(session.scalars(select(Message.message_id)))


def refusals(app: Flask) -> list[dict[str, object]]:
    """The facts of every ``message.refused`` audit entry, oldest first."""
    with transaction(app.extensions["gateway"].sessions) as session:
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.kind == "message.refused").order_by(AuditEntry.leaf_index)
        )
        return [decode(entry.entry) for entry in entries]


@contextmanager
def watching(paths: Paths) -> Iterator[FifoWatch]:
    with FifoWatch(paths.fifo) as watch:
        yield watch
