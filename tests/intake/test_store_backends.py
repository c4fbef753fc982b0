"""The intake stores on both backends: SQLite (embedded default) and the real PostgreSQL."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from gateway.messages.models import Message
from gateway.sdk.envelope import wrap
from gateway.settings import Settings
from gateway.store.db import transaction
from gateway.web.app import create_app
from tests.conftest import EDUCATION_DEPARTMENT, UNIVERSITY, Signer, example, receipt_bytes


def test_accept_store_and_answer_a_resend_once_stored(store_settings: Settings, sign: Signer) -> None:
    app = create_app(store_settings)
    client = app.test_client()
    data = sign(
        wrap(
            example("destination-registration"),
            sender=UNIVERSITY,
            recipient=EDUCATION_DEPARTMENT,
            service="DestinationRegistration",
            message_id=str(uuid.uuid4()),
        )
    )
    first = client.post("/soap", data=data, content_type="text/xml")
    second = client.post("/soap", data=data, content_type="text/xml")
    assert first.status_code == 200, first.data
    assert second.status_code == 200
    assert receipt_bytes(second.data) == receipt_bytes(first.data)  # the original receipt; nothing stored again
    with transaction(app.extensions["gateway"].sessions) as session:
        assert session.scalar(select(func.count()).select_from(Message)) == 1
        stored = session.scalar(select(Message))
        assert stored is not None and app.extensions["gateway"].payloads.open_envelope(stored) == data
        assert stored.sealed_envelope is not None and data not in stored.sealed_envelope
        assert stored.received_at.tzinfo is not None
    app.extensions["gateway"].sequencer.run_once()  # ready also means no audit entry waits too long
    assert client.get("/readyz").status_code == 200
    app.extensions["gateway"].engine.dispose()
