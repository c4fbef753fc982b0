"""POST /soap is answered in front of the Flask app (``gateway.intake.endpoint``): none of the pages'
hooks, cookies or limits run for it; its answer, JSON line, counters, header and client address are
what the app gave it before."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Iterator

import pytest
from flask import Flask, request
from flask.testing import FlaskClient

from gateway.monitoring import events
from gateway.settings import Settings
from gateway.web.app import create_app
from tests.conftest import UNIVERSITY


@pytest.fixture
def registration(signed_message: Callable[..., bytes]) -> bytes:
    """A signed destination registration, which the demo gateway accepts."""
    return signed_message("destination-registration", "DestinationRegistration")


@pytest.fixture
def lines() -> Iterator[list[dict[str, object]]]:
    """The JSON lines written meanwhile (``gateway.monitoring.events``)."""
    kept: list[dict[str, object]] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            kept.append(json.loads(record.getMessage()))

    logger = logging.getLogger(events.LOGGER)
    handler = Keep()
    logger.addHandler(handler)
    yield kept
    logger.removeHandler(handler)


def test_the_intake_runs_none_of_the_apps_request_hooks(app: Flask, registration: bytes) -> None:
    hooked: list[str] = []
    app.before_request(lambda: hooked.append(f"{request.method} {request.path}"))
    client = app.test_client()
    accepted = client.post("/soap?lang=zh", data=registration, content_type="text/xml")
    refused = client.post("/soap", data=b"<not-xml", content_type="text/xml")
    assert (accepted.status_code, refused.status_code) == (200, 500)
    assert hooked == []  # neither the limiter's look-ups, nor the session, nor the metrics port's check
    assert "Set-Cookie" not in accepted.headers  # the language cookie a page's ?lang= sets
    for answer in (accepted, refused):
        assert answer.headers["Content-Type"] == "text/xml; charset=utf-8"
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["Content-Length"] == str(len(answer.data))
    assert client.get("/soap?wsdl").status_code == 200
    assert hooked == ["GET /soap"]  # the WSDL is the app's


def test_the_intake_writes_its_line_with_the_client_its_trusted_proxy_names(
    settings: Settings, registration: bytes, lines: list[dict[str, object]]
) -> None:
    app = create_app(dataclasses.replace(settings, trusted_proxies=("10.0.0.0/8",)))
    try:
        client = app.test_client()
        forwarded = {"REMOTE_ADDR": "10.0.0.1"}
        headers = {"X-Forwarded-For": "203.0.113.9"}
        assert (
            client.post(
                "/soap",
                data=registration,
                content_type="text/xml",
                headers=headers,
                environ_base=forwarded,
            ).status_code
            == 200
        )
        client.post("/soap", data=b"<not-xml", content_type="text/xml", environ_base={"REMOTE_ADDR": "198.51.100.7"})
    finally:
        app.extensions["gateway"].engine.dispose()
    accepted, refused = lines
    assert accepted["event"] == "request" and (accepted["method"], accepted["path"]) == ("POST", "/soap")
    assert accepted["client"] == "203.0.113.9" and accepted["status"] == 200
    assert accepted["outcome"] == "accepted" and accepted["sender"] == UNIVERSITY
    assert refused["client"] == "198.51.100.7" and refused["fault_code"] == "XML_MALFORMED"
    assert isinstance(accepted["duration_ms"], float) and accepted["duration_ms"] > 0


def test_an_accepted_message_is_one_line_at_info_and_a_refused_one_also_says_why(
    client: FlaskClient, registration: bytes, lines: list[dict[str, object]], caplog: pytest.LogCaptureFixture
) -> None:
    """The JSON line says all there is of an acceptance; a refusal's text line adds the fault's message."""
    with caplog.at_level(logging.INFO):
        answer = client.post("/soap", data=registration, content_type="text/xml")
        client.post("/soap", data=b"<not-xml", content_type="text/xml")
    assert answer.status_code == 200
    endpoint = [record.getMessage() for record in caplog.records if record.name == "gateway.intake.endpoint"]
    assert len(endpoint) == 1 and endpoint[0].startswith("refused XML_MALFORMED: ")
    assert [line["outcome"] for line in lines] == ["accepted", "refused"]


def test_other_methods_and_paths_go_on_to_the_app(client: FlaskClient) -> None:
    assert client.put("/soap", data=b"<x/>", content_type="text/xml").status_code == 405
    assert client.post("/soap/", data=b"<x/>", content_type="text/xml").status_code == 404


def test_a_failure_outside_the_messages_handling_is_still_a_soap_fault(
    app: Flask, registration: bytes, lines: list[dict[str, object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Flask answered an error escaping the view with its error page; the endpoint answers a SOAP fault."""
    from gateway.intake import endpoint

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("the metrics directory is gone")

    monkeypatch.setattr(endpoint, "count_message", broken)
    answer = app.test_client().post("/soap", data=registration, content_type="text/xml")
    assert answer.status_code == 500 and answer.mimetype == "text/xml"
    assert b"INTERNAL_ERROR" in answer.data and answer.headers["X-Content-Type-Options"] == "nosniff"
    assert [(line["status"], line["fault_code"]) for line in lines] == [(500, "INTERNAL_ERROR")]
