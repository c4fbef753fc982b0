"""The push connector reads a recipient's answer with the hardened parser: only an "accepted"
acknowledgement naming the message counts; faults, other statuses and unreadable answers do not."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
import urllib3
from werkzeug.serving import make_server

from connectors.base import Outbound
from connectors.push import PushConnector
from gateway.sdk.recipient import acknowledgement

MESSAGE_ID = "6f9a1c2e-0000-4000-8000-000000000001"
FAULT = (
    b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
    b"<soapenv:Fault><faultcode>soapenv:Server</faultcode><faultstring>disk full</faultstring></soapenv:Fault>"
    b"</soapenv:Body></soapenv:Envelope>"
)
DTD = b'<!DOCTYPE x [<!ENTITY e "boom">]><x>&e;</x>'


@contextmanager
def answering(status: str, body: bytes) -> Iterator[str]:
    def app(_environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response(status, [("Content-Type", "text/xml; charset=utf-8")])
        return [body]

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/soap"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.parametrize(
    ("status", "body", "positive", "detail"),
    [
        ("200 OK", acknowledgement(MESSAGE_ID, True), True, "accepted"),
        ("200 OK", acknowledgement(MESSAGE_ID, False, "not today"), False, "status 'rejected': not today"),
        ("500 Internal Server Error", FAULT, False, "SOAP fault from the recipient: disk full"),
        ("500 Internal Server Error", b"injected failure", False, "HTTP 500: unreadable answer"),
        ("200 OK", DTD, False, "HTTP 200: unreadable answer"),
        ("200 OK", b"<other/>", False, "no DeliveryAcknowledgement"),
        ("202 Accepted", acknowledgement(MESSAGE_ID, True), False, "HTTP 202, status 'accepted'"),
    ],
)
def test_answers(status: str, body: bytes, positive: bool, detail: str) -> None:
    connector = PushConnector()
    with answering(status, body) as endpoint:
        answer = connector.deliver(Outbound(MESSAGE_ID, "S", "R", endpoint, b"<x/>", 5.0))
    assert answer.positive is positive
    assert detail in answer.detail


def test_a_transport_failure_raises_for_the_retry() -> None:
    connector = PushConnector()
    with pytest.raises(urllib3.exceptions.NewConnectionError):
        connector.deliver(Outbound(MESSAGE_ID, "S", "R", "http://127.0.0.1:9/soap", b"<x/>", 2.0))


def test_a_recipient_slower_than_its_timeout_raises_for_the_retry() -> None:
    def slow(_environ: dict[str, Any], start_response: Any) -> list[bytes]:
        time.sleep(1.0)
        start_response("200 OK", [("Content-Type", "text/xml; charset=utf-8")])
        return [acknowledgement(MESSAGE_ID, True)]

    server = make_server("127.0.0.1", 0, slow, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(urllib3.exceptions.ReadTimeoutError):
            PushConnector().deliver(
                Outbound(MESSAGE_ID, "S", "R", f"http://127.0.0.1:{server.server_port}/soap", b"<x/>", 0.3)
            )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_many_threads_share_one_pool_of_connections_to_a_recipient() -> None:
    connector = PushConnector()
    with answering("200 OK", acknowledgement(MESSAGE_ID, True)) as endpoint:
        outbound = Outbound(MESSAGE_ID, "S", "R", endpoint, b"<x/>", 5.0)
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: connector.deliver(outbound), range(64)))
    assert all(answer.positive for answer in answers)


def test_the_proxy_of_the_environment_is_used_except_for_no_proxy_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    connector = PushConnector()
    assert isinstance(connector._pool("http://recipient.example/soap"), urllib3.ProxyManager)
    assert not isinstance(connector._pool("http://127.0.0.1:9/soap"), urllib3.ProxyManager)
    assert not isinstance(connector._pool("https://recipient.example/soap"), urllib3.ProxyManager)  # no HTTPS_PROXY
