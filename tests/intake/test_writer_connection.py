"""The group commit's writer on PostgreSQL keeps one connection from batch to batch
(``gateway.intake.writer``, ``hold_connection``), and still never fails a message on a connection
that went bad while it was held: one idle for a while is checked by the pool before the next
batch, and one found broken before the COMMIT is replaced and the batch run again."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import event, text

from gateway.intake import writer as writer_module
from gateway.intake.writer import BatchWriter
from gateway.sdk.envelope import wrap
from gateway.settings import Settings
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


def accepted(app: Flask, sign: Signer) -> None:
    answer = app.test_client().post("/soap", data=message(sign), content_type=SOAP)
    assert answer.status_code == 200, answer.data


def writers_checkouts(app: Flask) -> list[str]:
    """Records the pool checkouts made by the writer's thread (a list that grows)."""
    seen: list[str] = []

    def checkout(*_: object) -> None:
        if threading.current_thread().name.startswith("gateway-writer"):
            seen.append("checkout")

    event.listen(app.extensions["gateway"].engine, "checkout", checkout)
    return seen


@pytest.mark.parametrize("store_settings", ["postgresql"], indirect=True)
def test_the_writer_keeps_its_connection_while_batches_follow_each_other(
    app: Flask, sign: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "IDLE_CHECK_SECONDS", 60.0)
    accepted(app, sign)  # the writer takes its connection
    checkouts = writers_checkouts(app)
    for _ in range(4):
        accepted(app, sign)
    assert checkouts == []  # before: one checkout (and its ping) a batch

    monkeypatch.setattr(writer_module, "IDLE_CHECK_SECONDS", 0.0)  # every batch comes after a pause
    accepted(app, sign)  # still within the minute the batch before gave it
    assert checkouts == []
    accepted(app, sign)  # given back and taken again from the pool, which pings it
    accepted(app, sign)
    assert checkouts == ["checkout", "checkout"]


@pytest.mark.parametrize("store_settings", ["postgresql"], indirect=True)
def test_a_held_connection_the_database_cut_is_replaced_and_the_message_accepted(
    app: Flask, sign: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "IDLE_CHECK_SECONDS", 60.0)  # held, not checked again by the pool
    accepted(app, sign)
    writer: BatchWriter = app.extensions["gateway"].pipeline.writer
    held = writer._held
    assert held is not None
    pid = held.connection.dbapi_connection.info.backend_pid  # type: ignore[union-attr]
    with app.extensions["gateway"].engine.connect() as other:
        assert other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
    batches = writer.batches
    accepted(app, sign)  # before the retry: 503, the database was unavailable for this batch
    assert writer.batches == batches + 1
    assert writer._held is not held and writer._held is not None
