"""Where the receipt is signed and kept.

On SQLite in the message's own batch, just before its commit: a message is stored with its receipt
or not at all. On PostgreSQL the batch's audit entries take their indexes in the COMMIT's round
trip, and the writer signs the receipts after the commit, with the audit counter free, and keeps
them in its next batch: a message may be stored without its receipt (the gateway stopped, the
database failed in between), never answered without it kept. With deferred indexes
(GATEWAY_INTAKE_DEFERRED_INDEXES, PostgreSQL) the intake transaction takes no audit counter, and the
receipt follows the sequencer. A receipt that was never kept or never answered is signed anew when
the sender sends again."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from flask import Flask
from lxml import etree
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import OperationalError

import gateway.intake.pipeline as pipeline_module
from gateway.audit.models import AuditEntry, AuditPending
from gateway.messages.models import Message
from gateway.sdk.envelope import wrap
from gateway.settings import Settings
from gateway.store.db import transaction
from gateway.web.app import create_app
from tests.conftest import EDUCATION_DEPARTMENT, UNIVERSITY, Signer, example

NS = {"gw": "urn:gradex:gateway:1"}


def registration(sign: Signer, message_id: str | None = None) -> bytes:
    envelope = wrap(
        example("destination-registration"),
        sender=UNIVERSITY,
        recipient=EDUCATION_DEPARTMENT,
        service="DestinationRegistration",
        message_id=message_id or str(uuid.uuid4()),
    )
    return sign(envelope)


def post(app: Flask, data: bytes) -> tuple[int, etree._Element]:
    answer = app.test_client().post("/soap", data=data, content_type="text/xml; charset=utf-8")
    return answer.status_code, etree.fromstring(answer.data)


def stored(app: Flask, message_id: str) -> Message | None:
    with transaction(app.extensions["gateway"].sessions) as session:
        return session.scalars(select(Message).where(Message.message_id == message_id)).one_or_none()


def leaf_index_of_acceptance(app: Flask, message_id: str) -> int:
    with transaction(app.extensions["gateway"].sessions) as session:
        return session.scalars(
            select(AuditEntry.leaf_index).where(
                AuditEntry.message_id == message_id, AuditEntry.kind == "message.accepted"
            )
        ).one()


def assert_the_answered_receipt_is_kept(app: Flask, message_id: str, body: etree._Element) -> None:
    """The receipt answered in ``body`` names the acceptance's leaf index and is the one kept, byte for byte."""
    answered = body.find(".//gw:Receipt", namespaces=NS)
    assert answered is not None
    index = leaf_index_of_acceptance(app, message_id)
    assert answered.findtext("gw:LogPosition/gw:LeafIndex", namespaces=NS) == str(index)
    kept = stored(app, message_id)
    assert kept is not None and kept.receipt is not None
    assert etree.tostring(answered, method="c14n", exclusive=True) == kept.receipt


def lose_the_receipts(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every receipt's UPDATE fails as a lost connection would make it fail (until ``monkeypatch.undo()``)."""
    issuer = app.extensions["gateway"].pipeline.receipts.receipts  # inside its TimedReceipts

    def lose_it(self: object, inbound: pipeline_module.Inbound, session: object) -> None:
        raise OperationalError("UPDATE messages", {}, OSError("the connection was lost"))

    monkeypatch.setattr(type(issuer), "keep", lose_it)


@pytest.mark.parametrize("store_settings", ["postgresql"], indirect=True)  # SQLite: one writer at a time anyway
def test_with_deferred_indexes_the_intake_commits_while_the_audit_counter_is_locked(
    postgres_url: str, store_settings: Settings, sign: Signer
) -> None:
    app = create_app(store_settings.with_overrides(intake_deferred_indexes=True))
    holder = create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    message_id = str(uuid.uuid4())
    answers: list[tuple[int, etree._Element]] = []
    with holder.connect() as connection:
        connection.execute(text("SELECT size FROM audit_log_state WHERE id = 1 FOR UPDATE"))  # the counter, held
        sender = threading.Thread(target=lambda: answers.append(post(app, registration(sign, message_id))))
        sender.start()
        deadline = time.monotonic() + 30
        while stored(app, message_id) is None:  # committed, with the counter row locked by another
            assert time.monotonic() < deadline, "the intake transaction waited for the audit counter"
            time.sleep(0.05)
        assert not answers  # the receipt waits for the message's place in the log
        with transaction(app.extensions["gateway"].sessions) as session:
            assert (
                session.scalar(select(func.count()).select_from(AuditPending).where(AuditPending.leaf_index.is_(None)))
                >= 1
            )
        connection.rollback()  # the counter is free: the sequencer gives the waiting entries their indexes
        sender.join(timeout=30)
    holder.dispose()
    status, body = answers[0]
    assert status == 200
    assert body.findtext(".//gw:Receipt/gw:LogPosition/gw:LeafIndex", namespaces=NS) == str(
        leaf_index_of_acceptance(app, message_id)
    )
    kept = stored(app, message_id)
    assert kept is not None and kept.receipt is not None and b"LogPosition" in kept.receipt
    app.extensions["gateway"].engine.dispose()


@pytest.mark.parametrize("store_settings", ["sqlite"], indirect=True)  # PostgreSQL: the next test
def test_on_sqlite_a_message_is_stored_with_its_receipt_in_one_commit(
    store_settings: Settings, sign: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(store_settings)
    assert app.extensions["gateway"].pipeline.receipt_in_batch
    kept_at: list[int] = []
    writer = app.extensions["gateway"].pipeline.writer
    message_id = str(uuid.uuid4())
    issuer = app.extensions["gateway"].pipeline.receipts.receipts
    keep = type(issuer).keep

    def noting(self: object, inbound: pipeline_module.Inbound, session: object) -> None:
        kept_at.append(writer.batches)
        keep(self, inbound, session)  # type: ignore[arg-type]

    monkeypatch.setattr(type(issuer), "keep", noting)
    before = writer.batches
    status, body = post(app, registration(sign, message_id))
    assert status == 200
    assert writer.batches == before + 1 and kept_at == [before + 1]  # one batch: the message and its receipt
    assert_the_answered_receipt_is_kept(app, message_id, body)
    app.extensions["gateway"].engine.dispose()


@pytest.mark.parametrize("store_settings", ["postgresql"], indirect=True)
def test_on_postgresql_the_receipt_is_signed_after_the_commit_with_the_audit_counter_free_and_kept_next(
    store_settings: Settings, postgres_url: str, sign: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(store_settings)
    pipeline = app.extensions["gateway"].pipeline
    assert pipeline.receipt_settled and not pipeline.receipt_in_batch
    writer = pipeline.writer
    message_id = str(uuid.uuid4())
    issuer = pipeline.receipts.receipts
    sign_receipt, keep = type(issuer).sign, type(issuer).keep
    other = create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    seen: list[tuple[bool, bool]] = []  # at signing: (the message stored, the counter row free)
    kept_at: list[int] = []

    def signing(self: object, inbound: pipeline_module.Inbound) -> None:
        with other.connect() as connection:
            free = connection.execute(text("SELECT size FROM audit_log_state WHERE id = 1 FOR UPDATE NOWAIT")).all()
            connection.rollback()
        seen.append((stored(app, message_id) is not None, bool(free)))
        sign_receipt(self, inbound)

    def noting(self: object, inbound: pipeline_module.Inbound, session: object) -> None:
        kept_at.append(writer.batches)
        keep(self, inbound, session)

    monkeypatch.setattr(type(issuer), "sign", signing)
    monkeypatch.setattr(type(issuer), "keep", noting)
    before = writer.batches
    status, body = post(app, registration(sign, message_id))
    other.dispose()
    assert status == 200
    assert seen == [(True, True)]  # signed once its message was committed, the counter row locked by nobody
    assert writer.batches == before + 2 and kept_at == [before + 2]  # the message's batch, then the receipt's
    assert_the_answered_receipt_is_kept(app, message_id, body)
    app.extensions["gateway"].engine.dispose()


def test_a_receipt_that_cannot_be_kept_is_not_answered_and_the_message_is_answered_when_sent_again(
    store_settings: Settings, sign: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite the receipt is kept in its message's batch, which fails with it: nothing is
    stored. On PostgreSQL it is kept in the next batch: the message is stored without it. Either
    way the sender is told to send again, and is then answered with a receipt that is kept."""
    app = create_app(store_settings)
    message_id = str(uuid.uuid4())
    data = registration(sign, message_id)
    lose_the_receipts(app, monkeypatch)
    answer = app.test_client().post("/soap", data=data, content_type="text/xml; charset=utf-8")
    assert answer.status_code == 503 and b"DATABASE_UNAVAILABLE" in answer.data  # send again, it says
    monkeypatch.undo()
    lost = stored(app, message_id)
    if app.extensions["gateway"].engine.dialect.name == "sqlite":
        assert lost is None  # not stored without its receipt
        with transaction(app.extensions["gateway"].sessions) as session:
            entries = select(func.count()).select_from(AuditEntry).where(AuditEntry.message_id == message_id)
            assert session.scalar(entries) == 0
    else:
        assert lost is not None and lost.receipt is None  # stored, its receipt neither kept nor answered
    status, body = post(app, data)
    assert status == 200
    assert_the_answered_receipt_is_kept(app, message_id, body)
    app.extensions["gateway"].engine.dispose()


@pytest.mark.parametrize("store_settings", ["postgresql"], indirect=True)  # deferred indexes: PostgreSQL's only
def test_with_deferred_indexes_a_receipt_that_could_not_be_kept_is_not_answered_and_signed_anew_on_a_resend(
    store_settings: Settings, sign: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(store_settings.with_overrides(intake_deferred_indexes=True))
    assert not app.extensions["gateway"].pipeline.receipt_in_batch
    message_id = str(uuid.uuid4())
    data = registration(sign, message_id)
    lose_the_receipts(app, monkeypatch)
    answer = app.test_client().post("/soap", data=data, content_type="text/xml; charset=utf-8")
    assert answer.status_code == 503 and b"DATABASE_UNAVAILABLE" in answer.data  # not answered without it kept
    monkeypatch.undo()
    lost = stored(app, message_id)
    assert lost is not None and lost.receipt is None
    status, again = post(app, data)
    assert status == 200
    assert_the_answered_receipt_is_kept(app, message_id, again)
    assert again.findtext(".//gw:Receipt/gw:MessageId", namespaces=NS) == message_id
    dsig = "{http://www.w3.org/2000/09/xmldsig#}"
    sent = etree.fromstring(data).find(f".//{dsig}Signature/{dsig}SignedInfo")
    assert sent is not None
    named = [d.text for d in again.iterfind(f".//gw:SignedParts//{dsig}DigestValue", NS)]
    assert sorted(named) == sorted(d.text for d in sent.iter(f"{dsig}DigestValue")) and len(named) >= 2  # read anew
    app.extensions["gateway"].engine.dispose()


@pytest.mark.parametrize("store_settings", ["postgresql"], indirect=True)  # deferred indexes: PostgreSQL's only
def test_with_deferred_indexes_a_message_whose_place_in_the_log_came_too_late_gets_its_receipt_when_sent_again(
    store_settings: Settings, sign: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(store_settings.with_overrides(intake_deferred_indexes=True))
    message_id = str(uuid.uuid4())
    data = registration(sign, message_id)

    def too_late(*_args: object, **_kwargs: object) -> None:
        raise TimeoutError("no leaf index in time")

    monkeypatch.setattr(app.extensions["gateway"].pipeline.positions, "wait", too_late)
    answer = app.test_client().post("/soap", data=data, content_type="text/xml; charset=utf-8")
    assert answer.status_code == 503 and b"DATABASE_UNAVAILABLE" in answer.data  # send again, it says
    monkeypatch.undo()
    assert stored(app, message_id) is not None  # stored all the same, without its receipt
    status, body = post(app, data)
    assert status == 200
    assert body.findtext(".//gw:Receipt/gw:LogPosition/gw:LeafIndex", namespaces=NS) == str(
        leaf_index_of_acceptance(app, message_id)
    )
    app.extensions["gateway"].engine.dispose()
