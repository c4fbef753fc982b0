"""``/metrics``: who may read it, what the intake counts and times, and the gauges read from the store."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from gateway.monitoring import events
from gateway.monitoring.instruments import stage_name
from gateway.sdk.envelope import wrap
from gateway.settings import Settings
from gateway.web.app import create_app
from tests.conftest import EDUCATION_DEPARTMENT, UNIVERSITY, Signer, example

TOKEN = "scrape-token-for-tests"


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    application = create_app(settings.with_overrides(metrics_token=TOKEN))
    application.config["TESTING"] = True
    yield application
    application.extensions["gateway"].engine.dispose()


def scrape(client: FlaskClient) -> dict[str, float]:
    """Every sample of ``/metrics`` as ``name{label="value",...}`` -> value."""
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.data
    assert response.content_type.startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


def registration(sign: Signer) -> bytes:
    return sign(
        wrap(
            example("destination-registration"),
            sender=UNIVERSITY,
            recipient=EDUCATION_DEPARTMENT,
            service="DestinationRegistration",
        ),
        as_=UNIVERSITY,
    )


def test_metrics_are_refused_without_the_token(app: Flask) -> None:
    client = app.test_client()
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 404
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_metrics_are_off_when_the_operator_chose_no_protection(settings: Settings) -> None:
    application = create_app(settings)
    try:
        assert application.test_client().get("/metrics").status_code == 404
    finally:
        application.extensions["gateway"].engine.dispose()


def test_the_metrics_port_serves_only_the_metrics(settings: Settings) -> None:
    application = create_app(settings.with_overrides(metrics_port=9464))
    try:
        client = application.test_client()
        on_port = {"SERVER_PORT": "9464"}
        assert client.get("/metrics", environ_overrides=on_port).status_code == 200
        assert client.get("/healthz", environ_overrides=on_port).status_code == 404
        assert client.get("/metrics").status_code == 404  # not on the main port without a token
        assert client.get("/healthz").status_code == 200
    finally:
        application.extensions["gateway"].engine.dispose()


def test_accepted_and_refused_messages_are_counted_and_timed(app: Flask, sign: Signer) -> None:
    client = app.test_client()
    before = scrape(client)
    accepted = 'gateway_messages_total{code="",outcome="accepted",service="DestinationRegistration"}'
    refused = 'gateway_messages_total{code="XML_MALFORMED",outcome="refused",service="unknown"}'
    assert client.post("/soap", data=registration(sign), content_type="text/xml").status_code == 200
    assert client.post("/soap", data=b"<not-xml", content_type="text/xml").status_code != 200
    after = scrape(client)
    assert after[accepted] == before.get(accepted, 0) + 1
    assert after[refused] == before.get(refused, 0) + 1
    # Every stage of the accepted message was timed once more; parsing twice (the refused one too).
    for stage in ("parse", "split", "validate_schema", "verify_signature", "check_codes", "store", "issue_receipt"):
        key = f'gateway_intake_stage_seconds_count{{stage="{stage}"}}'
        grew = after[key] - before.get(key, 0)
        assert grew == (2 if stage == "parse" else 1), (stage, grew)
    assert after['gateway_intake_seconds_count{outcome="accepted"}'] >= 1


def test_store_gauges(app: Flask, sign: Signer) -> None:
    client = app.test_client()
    assert client.post("/soap", data=registration(sign), content_type="text/xml").status_code == 200
    samples = scrape(client)
    unfinished = sum(v for k, v in samples.items() if k.startswith("gateway_delivery_queue_depth{"))
    assert unfinished >= 1
    assert samples[f'gateway_delivery_queue_depth{{recipient="{EDUCATION_DEPARTMENT}"}}'] >= 1
    assert samples[f'gateway_delivery_oldest_age_seconds{{recipient="{EDUCATION_DEPARTMENT}"}}'] >= 0
    assert samples["gateway_dead_letters{}"] == 0
    assert samples["gateway_audit_log_size{}"] >= 1
    assert samples["gateway_audit_entries_not_integrated{}"] >= 1  # nothing ran the sequencer
    assert samples["gateway_audit_integration_lag_seconds{}"] >= 0
    assert samples['gateway_grant_uses{outcome="used"}'] == 0
    assert samples['gateway_archives_overdue{waiting_for="dispatch"}'] == 0
    crl = [v for k, v in samples.items() if k.startswith("gateway_crl_next_update_seconds{")]
    assert crl and all(v > 86400 for v in crl)  # the development CA's list is fresh
    app.extensions["gateway"].sequencer.run_once()
    samples = scrape(client)
    assert samples["gateway_audit_entries_not_integrated{}"] == 0
    assert 0 <= samples["gateway_audit_checkpoint_age_seconds{}"] < 60


def test_stage_names() -> None:
    class ValidateSchema:
        def __call__(self) -> None: ...

    def check_sender() -> None: ...

    assert stage_name(ValidateSchema()) == "validate_schema"
    assert stage_name(check_sender) == "check_sender"


def test_one_json_line_per_request(app: Flask, sign: Signer) -> None:
    client = app.test_client()
    handler_lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            handler_lines.append(record.getMessage())

    logger = logging.getLogger(events.LOGGER)
    keep = Keep()
    logger.addHandler(keep)
    try:
        client.post("/soap", data=registration(sign), content_type="text/xml")
        client.post("/soap", data=b"<not-xml", content_type="text/xml")
        client.get("/healthz")  # polled: not logged
        client.get("/directory/?q=1")
    finally:
        logger.removeHandler(keep)
    lines = [json.loads(line) for line in handler_lines]
    assert [line["event"] for line in lines] == ["request"] * 3
    accepted, refused, page = lines
    assert accepted["outcome"] == "accepted" and accepted["service"] == "DestinationRegistration"
    assert accepted["sender"] == UNIVERSITY and accepted["message_id"] and accepted["status"] == 200
    assert isinstance(accepted["duration_ms"], float)
    assert refused["outcome"] == "refused" and refused["fault_code"] == "XML_MALFORMED"
    assert page["path"] == "/directory/" and "q=1" not in json.dumps(page)


def test_the_database_stages_times_are_observed_after_the_commit_not_in_the_writer(app: Flask, sign: Signer) -> None:
    """In the writer an observation made the database's lock wait: the request's thread makes it."""
    import threading

    from gateway.monitoring.instruments import TimedStage

    pipeline = app.extensions["gateway"].pipeline
    observed: dict[str, list[str]] = {}
    for stage in (*pipeline.checks, *pipeline.stages):
        assert isinstance(stage, TimedStage)
        stage._observe = lambda _seconds, name=stage.name: observed.setdefault(name, []).append(
            threading.current_thread().name
        )
    assert app.test_client().post("/soap", data=registration(sign), content_type="text/xml").status_code == 200
    assert observed["store"] == observed["check_sender"] == observed["parse"] == [threading.current_thread().name]
    assert set(observed) == {stage.name for stage in (*pipeline.checks, *pipeline.stages)}
