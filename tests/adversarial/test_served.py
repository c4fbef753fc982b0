"""A representative subset of the hostile inputs against ``gateway serve`` (a real process, over HTTP),
with ``/healthz`` polled from another thread the whole time: it must answer within a second before,
while and after each hostile request is processed, and the request must get its own fault code.

This is what the old DOCTYPE regex failed (it held the interpreter lock for over a minute, so no
other request of the process was answered) and what any quadratic stage would fail.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from gateway.sdk.signing import sign_envelope_bytes
from tests.adversarial.hostile import CORPUS, FifoWatch, Outcome, Paths, outcome
from tests.adversarial.test_generated import in_header
from tests.conftest import UNIVERSITY, credentials
from tests.security.variants import NS, one, parse, registration, serialise, sign_custom

pytestmark = pytest.mark.slow  # serves the gateway in a process of its own

HEALTH_SECONDS = 1.0


class HealthPoller:
    """Polls ``/healthz`` until stopped; remembers how long each answer took (or that none came)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        with requests.Session() as session:
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    status = session.get(f"{self.base}/healthz", timeout=HEALTH_SECONDS * 5).status_code
                except requests.RequestException as exc:
                    self.failures.append(type(exc).__name__)
                else:
                    if status != 200:
                        self.failures.append(f"HTTP {status}")
                self.latencies.append(time.perf_counter() - started)
                time.sleep(0.02)

    def polls(self) -> int:
        return len(self.latencies)

    def wait_for(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.polls() < count and time.monotonic() < deadline:
            time.sleep(0.01)

    def __enter__(self) -> HealthPoller:
        self._thread.start()
        self.wait_for(1)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@pytest.fixture(scope="module")
def bait(tmp_path_factory: pytest.TempPathFactory) -> Paths:
    return Paths.make(tmp_path_factory.mktemp("bait"))


def signed(served_home: Path, change: Callable[..., None] | None = None) -> bytes:
    university = credentials(served_home / "keys", UNIVERSITY)
    data = sign_envelope_bytes(registration(), university.key, university.certificate)
    if change is None:
        return data
    root = parse(data)
    change(root)
    return serialise(root)


def pi_in_signed_message_id(served_home: Path) -> bytes:
    from lxml import etree

    university = credentials(served_home / "keys", UNIVERSITY)
    root = parse(registration())
    node = one(root, "//gw:MessageId")
    instruction = etree.ProcessingInstruction("split")
    instruction.tail, node.text = node.text, None
    node.append(instruction)
    return sign_custom(serialise(root), university.key, university.certificate)


def body_moved(root: object) -> None:
    from tests.security.test_verification import body_moved_into_a_header

    body_moved_into_a_header(root)  # type: ignore[arg-type]


def sha1_digests(root: object) -> None:
    for method in root.iterfind(".//ds:SignedInfo/ds:Reference/ds:DigestMethod", NS):  # type: ignore[attr-defined]
        method.set("Algorithm", "http://www.w3.org/2000/09/xmldsig#sha1")


def empty_signature_value(root: object) -> None:
    one(root, "//ds:SignatureValue").text = None  # type: ignore[arg-type]


def utf32_xxe_behind_prolog(bait: Paths) -> bytes:
    text = bait.fill((CORPUS / "xxe-parameter-entity-fifo.xml").read_bytes()).decode()
    return ('<?xml version="1.0" encoding="UTF-32"?>' + "<!-- padding -->\n" * 5000 + text).encode("utf-32")


SUBSET: dict[str, tuple[str, Callable[[Path, Paths], bytes]]] = {
    "doctype-regex-backtracking": (
        "SOAP_ENVELOPE_INVALID",
        lambda home, bait: (CORPUS / "doctype-regex-backtracking.xml").read_bytes(),
    ),
    "utf32-xxe-fifo-behind-80-KiB-prolog": ("XML_ENTITY_FORBIDDEN", lambda home, bait: utf32_xxe_behind_prolog(bait)),
    "doctype-behind-9-MB-of-white-space": (
        "XML_DTD_FORBIDDEN",
        lambda home, bait: b" " * 9_000_000 + f'<!DOCTYPE r SYSTEM "file://{bait.fifo}"><r/>'.encode(),
    ),
    "billion-laughs": ("XML_ENTITY_FORBIDDEN", lambda home, bait: (CORPUS / "billion-laughs.xml").read_bytes()),
    "deep-nesting-300": ("XML_TOO_DEEP", lambda home, bait: (CORPUS / "deep-nesting-300.xml").read_bytes()),
    "40000-attributes": (
        "XML_TOO_MANY_ATTRIBUTES",
        lambda home, bait: in_header(
            b"<x:H xmlns:x='urn:x' " + b" ".join(b'a%d="1"' % i for i in range(40_000)) + b"/>"
        ),
    ),
    "10000-namespaces": (
        "XML_TOO_MANY_NAMESPACES",
        lambda home, bait: in_header(
            b"<x:H xmlns:x='urn:x' " + b" ".join(b'xmlns:n%d="urn:n%d"' % (i, i) for i in range(10_000)) + b"/>"
        ),
    ),
    "2.5-million-elements": (
        "XML_TOO_MANY_ELEMENTS",
        lambda home, bait: in_header(b"<x:H xmlns:x='urn:x'>" + b"<e/>" * 2_500_000 + b"</x:H>"),
    ),
    "5-MB-text": (
        "XML_TEXT_TOO_LONG",
        lambda home, bait: in_header(b"<x:H xmlns:x='urn:x'>" + b"y" * 5_000_000 + b"</x:H>"),
    ),
    "signed-body-moved-into-a-header": ("SIGNATURE_INVALID", lambda home, bait: signed(home, body_moved)),
    "sha1-digests": ("ALGORITHM_NOT_ALLOWED", lambda home, bait: signed(home, sha1_digests)),
    "empty-signature-value": ("SIGNATURE_INVALID", lambda home, bait: signed(home, empty_signature_value)),
    "pi-in-signed-message-id": ("XML_PI_FORBIDDEN", lambda home, bait: pi_in_signed_message_id(home)),
}


def send(base: str, data: bytes) -> Outcome:
    started = time.perf_counter()
    response = requests.post(f"{base}/soap", data=data, headers={"Content-Type": "text/xml"}, timeout=60)
    return outcome(response.status_code, response.content, time.perf_counter() - started)


@pytest.mark.parametrize("name", SUBSET)
def test_the_gateway_answers_health_checks_while_it_refuses(
    gateway_url: str, served_home: Path, bait: Paths, name: str
) -> None:
    code, build = SUBSET[name]
    data = build(served_home, bait)
    with HealthPoller(gateway_url) as health, FifoWatch(bait.fifo) as watch:
        before = health.polls()
        answer = send(gateway_url, data)
        health.wait_for(before + 2)  # answered after the refusal too
    assert (answer.status, answer.code) == (500, code), answer.text[:2000]
    assert not watch.opened
    assert health.failures == []
    assert max(health.latencies) < HEALTH_SECONDS, sorted(health.latencies)[-3:]
    assert answer.seconds < 10, answer.seconds
