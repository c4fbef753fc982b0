"""Every answer of every route carries ``X-Content-Type-Options: nosniff`` (JSON and CSV above all).

The routes are read from the application itself, so a route added later is covered without
touching this test.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import AnyConverter, IntegerConverter, Rule

from gateway.settings import Settings
from gateway.staff.models import Role
from gateway.staff.services import add_user
from gateway.store.db import transaction
from gateway.web.app import create_app
from tests.web.helpers import csrf_token

PASSWORD = "headers-password-1"
SAMPLES = {"name": "gateway-1.xsd", "filename": "portal.js", "grant_id": "no-such-grant"}
# Query strings that make the routes answer with their content rather than with a missing-parameter error.
QUERIES = {
    "audit_log.inclusion": "index=0",
    "audit_log.consistency": "first=1&second=2",
    "audit_log.entries": "start=0&end=2",
}


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    application = create_app(settings.with_overrides(audit_entries_public=True))
    application.config["TESTING"] = True
    context = application.extensions["gateway"]
    context.sequencer.run_once()  # a signed checkpoint, so that the log's routes answer with proofs
    with transaction(context.sessions) as session:
        add_user(session, "ada", Role.AUDITOR, PASSWORD, datetime.now(UTC))
    yield application
    context.engine.dispose()


def auditor(app: Flask) -> FlaskClient:
    client = app.test_client()
    token = csrf_token(client, "/staff/sign-in")
    client.post("/staff/sign-in", data={"username": "ada", "password": PASSWORD, "csrf_token": token})
    return client


def url_of(app: Flask, rule: Rule) -> str:
    values: dict[str, object] = {}
    for argument in rule.arguments:
        converter = rule._converters[argument]
        if isinstance(converter, IntegerConverter):
            values[argument] = 1
        elif isinstance(converter, AnyConverter):
            values[argument] = sorted(converter.items)[0]  # type: ignore[attr-defined]
        else:
            values[argument] = SAMPLES.get(argument, "x")
    with app.test_request_context():
        path = app.url_for(rule.endpoint, **values)
    query = QUERIES.get(rule.endpoint, "wsdl" if rule.endpoint == "intake.wsdl" else "")
    return f"{path}?{query}" if query else path


def test_every_route_answers_with_nosniff(app: Flask) -> None:
    clients = {"anonymous": app.test_client(), "auditor": auditor(app)}
    answered: dict[str, set[str]] = {}
    missing = []
    for rule in app.url_map.iter_rules():
        url = url_of(app, rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            for who, client in clients.items():
                response = client.open(url, method=method)
                response.close()  # static files are streamed
                answered.setdefault(response.mimetype, set()).add(f"{method} {url} {response.status_code}")
                if response.headers.get("X-Content-Type-Options") != "nosniff":
                    missing.append(f"{method} {url} as {who}: {response.status_code} {response.mimetype}")
    assert missing == []
    # The answers this is above all about were among those checked, with their content.
    json_ok = {a.split()[1] for a in answered["application/json"] if a.endswith(" 200")}
    assert {"/directory.json", "/healthz", "/readyz", "/log/proof/inclusion?index=0"} <= json_ok
    assert {"/log/proof/consistency?first=1&second=2", "/log/entries?start=0&end=2"} <= json_ok
    assert "GET /directory.csv 200" in answered["text/csv"]
    assert "GET /log/checkpoint 200" in answered["text/plain"]
    assert "GET /soap?wsdl 200" in answered["text/xml"]
    # POST /soap is no route of the app (gateway.intake.endpoint answers it in front): its answers too.
    for who, client in clients.items():
        fault = client.post("/soap", data=b"<not-xml", content_type="text/xml")
        assert (fault.status_code, fault.mimetype) == (500, "text/xml"), who  # XML_MALFORMED
        assert fault.headers.get("X-Content-Type-Options") == "nosniff", who


def test_error_answers_in_json_carry_it_too(client: FlaskClient) -> None:
    for url in ("/directory.json?region=abc", "/log/proof/inclusion", "/log/entries", "/readyz"):
        response = client.get(url)
        assert response.mimetype == "application/json", url
        assert response.headers["X-Content-Type-Options"] == "nosniff", url
    csv = client.get("/directory.csv?region=abc")
    assert csv.status_code == 400 and csv.headers["X-Content-Type-Options"] == "nosniff"
