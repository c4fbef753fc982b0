"""A connection that broke while it lay in the pool does not fail a message.

The pool checks a PostgreSQL connection only when it has been unused for a second
(``gateway.store.db``); the group commit runs a batch whose connection turns out broken before its
COMMIT again, once, on a new connection (``gateway.intake.writer``).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import event, text

from gateway.intake.writer import BatchWriter
from gateway.sdk.envelope import wrap
from gateway.settings import Settings
from gateway.store import db
from gateway.store.db import connect
from gateway.web.app import create_app
from tests.conftest import EDUCATION_DEPARTMENT, UNIVERSITY, Signer
from tests.domain.documents import new_graduate, registration

SOAP = "text/xml; charset=utf-8"


@pytest.fixture
def app(store_settings: Settings) -> Iterator[Flask]:
    served = create_app(store_settings)
    yield served
    served.extensions["gateway"].engine.dispose()


def message(sign: Signer) -> bytes:
    graduate = new_graduate()
    document = registration(graduate, f"REG-{graduate.index}-{uuid.uuid4().hex[:6]}")
    wrapped = wrap(
        document,
        sender=UNIVERSITY,
        recipient=EDUCATION_DEPARTMENT,
        service="DestinationRegistration",
        message_id=str(uuid.uuid4()),
    )
    return sign(wrapped, as_=UNIVERSITY)


def post(app: Flask, sign: Signer) -> int:
    return app.test_client().post("/soap", data=message(sign), content_type=SOAP).status_code


@pytest.mark.parametrize("store_settings", ["postgresql"], indirect=True)
def test_a_batchs_connection_cut_while_pooled_is_replaced_and_the_message_accepted(
    app: Flask, sign: Signer, store_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 60.0)  # lent again unchecked
    engine = app.extensions["gateway"].engine
    writers: list[int] = []

    def lent(dbapi_connection: object, *_: object) -> None:
        if threading.current_thread().name.startswith("gateway-writer"):
            writers.append(dbapi_connection.info.backend_pid)  # type: ignore[attr-defined]

    event.listen(engine, "checkout", lent)
    assert post(app, sign) == 200
    other = connect(store_settings.database_url)
    try:
        with other.connect() as connection:  # the database cuts the connection the writer used
            assert connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": writers[-1]}).scalar_one()
    finally:
        other.dispose()
    writer: BatchWriter = app.extensions["gateway"].pipeline.writer
    batches, cut, lent_before = writer.batches, writers[-1], len(writers)
    assert post(app, sign) == 200  # without the batch run again: 503, the database "unavailable"
    assert writer.batches == batches + 2  # the message's batch (run again once) and its receipt's
    again = writers[lent_before:]
    assert again[0] == cut and cut not in again[1:]  # the cut one lent again, then a new one
