"""Group commit: what batching many messages in one transaction could break, shown not to.

Each test holds the process's batch writer with a piece of work that waits, lets the messages
queue behind it, then lets it go: the messages run in one batch (the test checks that they did),
each in a savepoint of its own.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from flask import Flask
from lxml import etree
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from gateway.archives.models import ArchiveTransfer
from gateway.audit.models import AuditEntry
from gateway.intake.writer import BatchWriter
from gateway.messages.models import Delivery, DeliveryStatus, Message
from gateway.registry.models import DeliveryMode
from gateway.sdk.envelope import wrap
from gateway.settings import Settings
from gateway.store.db import transaction
from gateway.web.app import create_app
from tests.conftest import AGENCY_CHAOYANG, EDUCATION_DEPARTMENT, UNIVERSITY, Signer, receipt_bytes
from tests.domain.documents import Graduate, filing, manifest, new_graduate, registration

NS = {"gw": "urn:gradex:gateway:1", "soapenv": "http://schemas.xmlsoap.org/soap/envelope/"}
SOAP = "text/xml; charset=utf-8"


def envelope(
    sign: Signer, document: bytes, sender: str, recipient: str, service: str, message_id: str | None = None
) -> bytes:
    wrapped = wrap(
        document, sender=sender, recipient=recipient, service=service, message_id=message_id or str(uuid.uuid4())
    )
    return sign(wrapped, as_=sender)


def post(app: Flask, data: bytes) -> tuple[int, bytes]:
    answer = app.test_client().post("/soap", data=data, content_type=SOAP)
    return answer.status_code, answer.data


def fault_code(body: bytes) -> str | None:
    return etree.fromstring(body).findtext(".//faultcode")


@contextmanager
def held(writer: BatchWriter, waiting: int) -> Iterator[list[int]]:
    """The writer held busy until ``waiting`` pieces queued behind it; yields the sizes of the
    batches it runs after that (the first is the one the test is about)."""
    gate, entered = threading.Event(), threading.Event()

    def hold(_session: Session) -> None:
        entered.set()
        assert gate.wait(30)

    sizes: list[int] = []
    run_batch = writer._transaction

    def counted(batch: list) -> None:  # type: ignore[type-arg]
        sizes.append(len(batch))
        run_batch(batch)

    holder = threading.Thread(target=writer.run, args=(hold,))
    holder.start()
    assert entered.wait(30)
    writer._transaction = counted  # type: ignore[method-assign]
    try:
        yield sizes
        deadline = time.monotonic() + 30
        while writer._queue.qsize() < waiting:
            assert time.monotonic() < deadline, "the messages did not queue behind the held batch"
            time.sleep(0.01)
        gate.set()
        holder.join(30)
        while not sizes and time.monotonic() < deadline:  # the writer's next batch, counted before it goes
            time.sleep(0.01)
    finally:
        gate.set()
        del writer._transaction  # type: ignore[attr-defined]


def send_in_one_batch(app: Flask, bodies: list[bytes]) -> list[tuple[int, bytes]]:
    """Post ``bodies`` at once so that their database work runs in one batch; their answers, in order."""
    writer: BatchWriter = app.extensions["gateway"].pipeline.writer
    answers: list[tuple[int, bytes] | None] = [None] * len(bodies)

    def send(i: int) -> None:
        answers[i] = post(app, bodies[i])

    with held(writer, len(bodies)) as sizes:
        senders = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
        for thread in senders:
            thread.start()
    for thread in senders:
        thread.join(60)
    assert sizes and sizes[0] == len(bodies), f"the messages ran in batches of {sizes}, not in one"
    assert all(answer is not None for answer in answers)
    return [answer for answer in answers if answer is not None]


def registrations(sign: Signer, prefix: str, count: int) -> list[bytes]:
    """``count`` signed destination registrations of new graduates, each under an id of its own."""
    return [
        envelope(
            sign,
            registration(new_graduate(), f"{prefix}-{n}-{uuid.uuid4().hex[:6]}"),
            UNIVERSITY,
            EDUCATION_DEPARTMENT,
            "DestinationRegistration",
        )
        for n in range(count)
    ]


def filed(app: Flask, sign: Signer) -> Graduate:
    """A graduate whose destination registration is filed (so that an archive manifest may follow)."""
    g = new_graduate()
    reg = registration(g, f"REG-{g.index}")
    status, body = post(app, envelope(sign, reg, UNIVERSITY, EDUCATION_DEPARTMENT, "DestinationRegistration"))
    assert status == 200, body
    fil = filing(g, f"REG-{g.index}")
    status, body = post(app, envelope(sign, fil, EDUCATION_DEPARTMENT, UNIVERSITY, "RegistrationFiled"))
    assert status == 200, body
    return g


def stored_ids(app: Flask) -> set[str]:
    with transaction(app.extensions["gateway"].sessions) as session:
        return set(session.scalars(select(Message.message_id)))


@pytest.fixture
def app(store_settings: Settings) -> Iterator[Flask]:
    served = create_app(store_settings)
    yield served
    served.extensions["gateway"].engine.dispose()


@pytest.mark.parametrize("store_settings", ["sqlite", "postgresql"], indirect=True)
def test_two_conflicting_manifests_about_one_graduate_in_one_batch_accept_exactly_one(app: Flask, sign: Signer) -> None:
    g = filed(app, sign)
    bodies = [
        envelope(
            sign, manifest(g, f"ATM-B-{n}", AGENCY_CHAOYANG), UNIVERSITY, AGENCY_CHAOYANG, "ArchiveTransferManifest"
        )
        for n in (1, 2)
    ]
    answers = send_in_one_batch(app, bodies)
    accepted = [body for status, body in answers if status == 200]
    refused = [body for status, body in answers if status != 200]
    assert len(accepted) == 1 and len(refused) == 1, answers
    assert b"ARCHIVE_TRANSFER_DUPLICATE" in refused[0]
    with transaction(app.extensions["gateway"].sessions) as session:
        transfers = session.scalars(
            select(ArchiveTransfer.manifest_id).where(ArchiveTransfer.manifest_id.like("ATM-B-%"))
        ).all()
    assert len(transfers) == 1


@pytest.mark.parametrize("store_settings", ["sqlite", "postgresql"], indirect=True)
def test_a_message_id_twice_in_one_batch_is_stored_once(app: Flask, sign: Signer) -> None:
    message_id = str(uuid.uuid4())
    first = envelope(
        sign,
        registration(new_graduate(), "REG-DUP-1"),
        UNIVERSITY,
        EDUCATION_DEPARTMENT,
        "DestinationRegistration",
        message_id,
    )
    other = envelope(
        sign,
        registration(new_graduate(), "REG-DUP-2"),
        UNIVERSITY,
        EDUCATION_DEPARTMENT,
        "DestinationRegistration",
        message_id,
    )
    answers = send_in_one_batch(app, [first, other])
    assert sorted(status for status, _ in answers)[0] == 200
    refused = [body for status, body in answers if status != 200]
    assert len(refused) == 1 and b"DUPLICATE_MESSAGE" in refused[0], answers
    with transaction(app.extensions["gateway"].sessions) as session:
        assert session.scalar(select(func.count()).select_from(Message).where(Message.message_id == message_id)) == 1


@pytest.mark.parametrize("store_settings", ["sqlite", "postgresql"], indirect=True)
def test_a_refused_message_in_a_batch_leaves_the_others_accepted_and_nothing_of_its_own(
    app: Flask, sign: Signer
) -> None:
    good = registrations(sign, "REG-OK", 3)
    # A filing of a registration nobody made: refused by the domain rules, after the sender's and
    # the recipient's checks ran in the batch.
    stray_id = str(uuid.uuid4())
    stray = envelope(
        sign, filing(new_graduate(), "REG-NEVER-MADE"), EDUCATION_DEPARTMENT, UNIVERSITY, "RegistrationFiled", stray_id
    )
    with transaction(app.extensions["gateway"].sessions) as session:
        entries_before = session.scalar(select(func.count()).select_from(AuditEntry))
    answers = send_in_one_batch(app, [good[0], stray, good[1], good[2]])
    assert answers[0][0] == 200
    assert answers[1][0] != 200 and fault_code(answers[1][1]) is not None
    assert [status for status, _ in answers[2:]] == [200, 200]
    stored = stored_ids(app)
    assert stray_id not in stored
    for (_, body), data in zip([answers[0], answers[2], answers[3]], [good[0], good[1], good[2]], strict=True):
        message_id = etree.fromstring(data).findtext(".//{urn:gradex:gateway:1}MessageId")
        assert message_id in stored
        with transaction(app.extensions["gateway"].sessions) as session:
            kept = session.scalar(select(Message.receipt).where(Message.message_id == message_id))
        assert kept == receipt_bytes(body)  # the answered receipt is the one kept
    with transaction(app.extensions["gateway"].sessions) as session:
        kinds = session.scalars(select(AuditEntry.kind).order_by(AuditEntry.leaf_index).offset(entries_before)).all()
        indexes = session.scalars(select(AuditEntry.leaf_index).order_by(AuditEntry.leaf_index)).all()
    # the three acceptances and the refusal (its own transaction); nothing the refused message began
    assert sorted(kinds) == sorted(["message.accepted"] * 3 + ["message.refused"])
    assert indexes == list(range(len(indexes)))  # contiguous: the rolled-back piece took no index


@pytest.mark.parametrize("store_settings", ["sqlite", "postgresql"], indirect=True)
def test_a_batchs_mailbox_deliveries_are_written_together_at_its_commit(app: Flask, sign: Signer) -> None:
    """A delivery to a pull mailbox is nobody's to read before the commit: the batch's go in one
    statement at its end, one for each accepted message and none for the one refused among them."""
    bodies = registrations(sign, "REG-MB", 3)
    stray = envelope(
        sign, filing(new_graduate(), "REG-NEVER-MADE"), EDUCATION_DEPARTMENT, UNIVERSITY, "RegistrationFiled"
    )
    inserts: list[str] = []

    def note(_connection: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO DELIVERIES"):
            inserts.append(statement)

    engine = app.extensions["gateway"].engine
    event.listen(engine, "before_cursor_execute", note)
    try:
        answers = send_in_one_batch(app, [bodies[0], stray, bodies[1], bodies[2]])
    finally:
        event.remove(engine, "before_cursor_execute", note)
    assert [status for status, _ in answers] == [200, 500, 200, 200]
    assert len(inserts) == 1  # the batch's three deliveries, in one statement
    message_ids = [etree.fromstring(data).findtext(".//{urn:gradex:gateway:1}MessageId") for data in bodies]
    with transaction(app.extensions["gateway"].sessions) as session:
        rows = session.execute(
            select(Message.message_id, Delivery.recipient_id, Delivery.mode, Delivery.status)
            .join(Delivery, Delivery.message_pk == Message.id)
            .where(Message.message_id.in_(message_ids))
        ).all()
    assert sorted(row.message_id for row in rows) == sorted(message_ids)  # one each
    assert {(row.recipient_id, row.mode, row.status) for row in rows} == {
        (EDUCATION_DEPARTMENT, DeliveryMode.PULL, DeliveryStatus.QUEUED)
    }


# gateway.intake.earlier's statements: SQLite's, PostgreSQL's
BATCH_LOOK_UPS = ("SELECT messages.sender_id, messages.message_id, messages.signature_sha256", "SELECT given.sender_id")


@pytest.mark.parametrize("store_settings", ["sqlite", "postgresql"], indirect=True)
def test_a_batchs_replay_checks_are_one_look_up_that_sees_what_was_stored_before(app: Flask, sign: Signer) -> None:
    """The batch's messages are looked up in one statement at its start (gateway.intake.earlier),
    not one each; what it finds is answered as before: the same document sent again gets its
    original receipt, another document under a used id is a duplicate, new messages are accepted."""
    before = registrations(sign, "REG-BEFORE", 2)
    receipts = []
    for body in before:
        status, answer = post(app, body)
        assert status == 200, answer
        receipts.append(receipt_bytes(answer))
    used_id = etree.fromstring(before[1]).findtext(".//{urn:gradex:gateway:1}MessageId")
    reused = envelope(
        sign,
        registration(new_graduate(), "REG-REUSED"),
        UNIVERSITY,
        EDUCATION_DEPARTMENT,
        "DestinationRegistration",
        used_id,
    )
    new = registrations(sign, "REG-NEW", 2)
    batch_look_ups: list[str] = []
    single_look_ups: list[str] = []
    version_reads: list[str] = []

    def note(_connection: object, _cursor: object, statement: str, *_: object) -> None:
        flat = " ".join(statement.split())
        if flat.startswith(BATCH_LOOK_UPS):
            batch_look_ups.append(flat)
        elif flat.startswith("SELECT messages.signature_sha256, messages.received_at"):
            single_look_ups.append(flat)
        elif flat.startswith("SELECT registry_version.version"):
            version_reads.append(flat)

    engine, writer = app.extensions["gateway"].engine, app.extensions["gateway"].pipeline.writer
    reruns = writer.reruns
    event.listen(engine, "before_cursor_execute", note)
    try:
        answers = send_in_one_batch(app, [new[0], before[0], reused, new[1]])
    finally:
        event.remove(engine, "before_cursor_execute", note)
    assert [status for status, _ in answers] == [200, 200, 500, 200], answers  # a SOAP 1.1 fault: 500
    assert receipt_bytes(answers[1][1]) == receipts[0]  # sent again: its original receipt
    assert fault_code(answers[2][1]) is not None and b"DUPLICATE_MESSAGE" in answers[2][1]
    # the refusal made the batch run again without it (gateway.intake.writer): one look-up a run
    assert writer.reruns - reruns == 1
    assert (len(batch_look_ups), len(single_look_ups)) == (2, 0)
    # the registry's version: on PostgreSQL read by the look-up itself, on SQLite by a SELECT a run
    assert len(version_reads) == (0 if engine.dialect.name == "postgresql" else 2)
    new_ids = {etree.fromstring(body).findtext(".//{urn:gradex:gateway:1}MessageId") for body in new}
    assert new_ids <= stored_ids(app)
