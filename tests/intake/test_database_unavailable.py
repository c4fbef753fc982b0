"""A database that cannot be reached or written: the sender is told to try again (503), not INTERNAL_ERROR."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask import Flask
from lxml import etree
from sqlalchemy import event, func, select

from gateway.messages.models import Message
from gateway.sdk.envelope import wrap
from gateway.settings import Settings
from gateway.store.db import connect, transaction
from gateway.web.app import create_app
from tests.conftest import EDUCATION_DEPARTMENT, UNIVERSITY, Signer, example, free_port

NS = {"gw": "urn:gradex:gateway:1"}


def registration(sign: Signer) -> bytes:
    envelope = wrap(
        example("destination-registration"),
        sender=UNIVERSITY,
        recipient=EDUCATION_DEPARTMENT,
        service="DestinationRegistration",
        message_id=str(uuid.uuid4()),
    )
    return sign(envelope)


def assert_try_again(app: Flask, data: bytes) -> None:
    answer = app.test_client().post("/soap", data=data, content_type="text/xml; charset=utf-8")
    assert answer.status_code == 503, answer.data
    assert answer.headers["Retry-After"] == "5"
    body = etree.fromstring(answer.data)
    assert body.findtext(".//gw:FaultDetail/gw:Code", namespaces=NS) == "DATABASE_UNAVAILABLE"
    assert body.findtext(".//faultcode") == "soapenv:Server"
    assert "send it again, unchanged, in a few seconds" in (body.findtext(".//faultstring") or "")


def test_a_database_that_cannot_be_written_asks_the_sender_to_send_again(settings: Settings, sign: Signer) -> None:
    app = create_app(settings)
    engine = app.extensions["gateway"].engine
    engine.dispose()

    def read_only(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA query_only = ON")  # as a full disk or a read-only file refuses writes

    event.listen(engine, "connect", read_only)
    data = registration(sign)
    assert_try_again(app, data)
    event.remove(engine, "connect", read_only)
    engine.dispose()
    # Writable again: the same message, sent again unchanged as the fault asked, is accepted once.
    accepted = app.test_client().post("/soap", data=data, content_type="text/xml; charset=utf-8")
    assert accepted.status_code == 200, accepted.data
    with transaction(app.extensions["gateway"].sessions) as session:
        assert session.scalar(select(func.count()).select_from(Message)) == 1
    engine.dispose()


def test_a_database_that_cannot_be_reached_asks_the_sender_to_send_again(
    store_settings: Settings, sign: Signer
) -> None:
    app = create_app(store_settings)
    context = app.extensions["gateway"]
    if store_settings.database_url.startswith("sqlite"):
        unreachable = connect(f"sqlite:///{store_settings.data_dir}/missing-folder/gateway.db")
    else:
        unreachable = connect(f"postgresql://gateway@127.0.0.1:{free_port()}/gateway?connect_timeout=2")
    context.sessions.configure(bind=unreachable)
    try:
        assert_try_again(app, registration(sign))
    finally:
        unreachable.dispose()
        context.engine.dispose()


@pytest.mark.parametrize("store_settings", ["postgresql"], indirect=True)  # SQLite's read-only case: the first test
def test_a_read_only_postgresql_asks_the_sender_to_send_again(store_settings: Settings, sign: Signer) -> None:
    app = create_app(store_settings)
    engine = app.extensions["gateway"].engine
    engine.dispose()

    def read_only(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("SET default_transaction_read_only = on")  # as a standby after a failover
        dbapi_connection.commit()  # a SET is transactional: keep it past the pool's reset

    event.listen(engine, "connect", read_only)
    try:
        assert_try_again(app, registration(sign))
    finally:
        event.remove(engine, "connect", read_only)
        engine.dispose()
