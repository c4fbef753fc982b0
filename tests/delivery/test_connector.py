"""The push connector reads a recipient's answer with the hardened parser: only an "accepted"
acknowledgement naming the message counts; faults, other statuses and unreadable answers do not."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server

from connectors.base import Outbound
from connectors.push import ZeepPushConnector
from gateway.sdk.recipient import acknowledgement
from gateway.settings import PROJECT_ROOT

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
    connector = ZeepPushConnector(PROJECT_ROOT / "schemas" / "recipient-1.wsdl")
    with answering(status, body) as endpoint:
        answer = connector.deliver(Outbound(MESSAGE_ID, "S", "R", endpoint, b"<x/>", 5.0))
    assert answer.positive is positive
    assert detail in answer.detail


def test_a_transport_failure_raises_for_the_retry() -> None:
    connector = ZeepPushConnector(PROJECT_ROOT / "schemas" / "recipient-1.wsdl")
    with pytest.raises(requests.ConnectionError):
        connector.deliver(Outbound(MESSAGE_ID, "S", "R", "http://127.0.0.1:9/soap", b"<x/>", 2.0))
