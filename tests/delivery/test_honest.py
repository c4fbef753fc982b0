"""Honest answers around delivery (issue 14, item 4): the receipt even when marking the deliveries
queued fails, and an acknowledgement naming another message logged with why it did not count."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update
from sqlalchemy.exc import OperationalError

from gateway.delivery import mailbox, outbox
from gateway.messages.models import Delivery
from gateway.sdk.recipient import acknowledgement
from gateway.store.db import transaction
from tests.conftest import EDUCATION_DEPARTMENT, UNIVERSITY, Signer
from tests.delivery.recipients import RecordingRecipient
from tests.delivery.test_push import anchors, deliveries, push_to, recipient, run_queue  # noqa: F401
from tests.domain.helpers import send


def test_a_database_failure_after_the_store_still_answers_the_receipt(
    app: Flask,
    client: FlaskClient,
    sign: Signer,
    recipient: RecordingRecipient,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*_args: Any) -> None:
        raise OperationalError("UPDATE deliveries", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr(outbox, "mark_queued", broken)
    code, detail = send(client, sign, "destination-registration", UNIVERSITY, EDUCATION_DEPARTMENT)
    assert code is None, detail  # a signed receipt (send() reads it), not Flask's HTML 500
    [delivery] = deliveries(app)
    assert delivery.status == "accepted"  # stored, on the broker, not marked queued
    monkeypatch.undo()
    # The sweep leaves it alone within its grace period, then takes it up.
    service = app.extensions["gateway"].delivery
    assert service.sweep() == 0
    with transaction(service.sessions) as session:
        session.execute(update(Delivery).values(updated_at=delivery.created_at - timedelta(minutes=5)))
    assert service.sweep() == 1
    run_queue(app)
    assert [d.status for d in deliveries(app)] == ["delivered"]
    assert len(recipient.received) == 1  # two broker messages, one delivery


@contextmanager
def wrong_id_recipient() -> Iterator[str]:
    """A recipient that acknowledges every delivery as accepted, under a message id of its own."""
    from werkzeug.serving import make_server

    def app(_environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/xml; charset=utf-8")])
        return [acknowledgement("00000000-0000-4000-8000-000000000000", True)]

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/soap"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_an_acknowledgement_of_another_message_is_not_counted_and_says_why(
    app: Flask, client: FlaskClient, sign: Signer, caplog: pytest.LogCaptureFixture
) -> None:
    with wrong_id_recipient() as endpoint:
        push_to(app, EDUCATION_DEPARTMENT, endpoint)
        code, detail = send(client, sign, "destination-registration", UNIVERSITY, EDUCATION_DEPARTMENT)
        assert code is None, detail
        with caplog.at_level(logging.INFO):
            run_queue(app)
    [delivery] = deliveries(app)
    assert delivery.status == "waiting_for_retry"
    assert "00000000-0000-4000-8000-000000000000" in (delivery.last_error or "")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "not counted" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    text = warnings[0].getMessage()
    assert EDUCATION_DEPARTMENT in text and "00000000-0000-4000-8000-000000000000" in text
    assert "counts only for the message it names" in text


def test_a_pull_acknowledgement_that_counts_for_nothing_is_logged_with_why(
    app: Flask, client: FlaskClient, sign: Signer, caplog: pytest.LogCaptureFixture
) -> None:
    code, detail = send(client, sign, "destination-registration", UNIVERSITY, EDUCATION_DEPARTMENT)  # pull
    assert code is None, detail
    [delivery] = deliveries(app)
    with transaction(app.extensions["gateway"].sessions) as session, caplog.at_level(logging.INFO):
        message_id = session.get(Delivery, delivery.id).message.message_id  # type: ignore[union-attr]
        refs = [mailbox.MessageRef("no-such-message", UNIVERSITY), mailbox.MessageRef(message_id, UNIVERSITY)]
        outcomes = mailbox.acknowledge(session, EDUCATION_DEPARTMENT, refs, datetime.now(UTC))
    assert outcomes == [mailbox.Acknowledgement.UNKNOWN, mailbox.Acknowledgement.UNKNOWN]
    reasons = [r.getMessage() for r in caplog.records if "not counted" in r.getMessage()]
    assert len(reasons) == 2, reasons
    assert "no such message in its mailbox" in reasons[0]
    assert "it is queued, not fetched" in reasons[1]
