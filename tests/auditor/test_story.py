"""A message's whole story: acceptance, receipt, deliveries with each attempt, and its audit entries."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from lxml import etree
from sqlalchemy import select, update

from gateway.audit.entries import decode
from gateway.audit.models import AuditEntry
from gateway.auditor.story import load_story
from gateway.delivery import mailbox
from gateway.delivery.policy import RetryPolicy
from gateway.messages.models import Delivery, Message
from gateway.registry.models import Participant
from gateway.sdk.envelope import wrap
from gateway.settings import PROJECT_ROOT
from gateway.store.db import transaction
from tests.auditor.helpers import GRADUATE_A, messages, send_story
from tests.conftest import (
    EDUCATION_DEPARTMENT,
    PRIVATE_EMPLOYER,
    UNIVERSITY,
    Signer,
    example,
    free_port,
)
from tests.delivery.test_push import push_to
from tests.domain.helpers import send
from tests.domain.test_season import current_offer
from tests.web.helpers import csrf_token

GW = {"gw": "urn:gradex:gateway:1"}


def text_of(page: str) -> str:
    """The page's visible text, tags stripped (for phrases that span elements)."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def test_the_story_of_an_accepted_manifest(story_app: Flask, story_auditor: FlaskClient) -> None:
    manifest = next(m for m in messages(story_app) if m.service == "ArchiveTransferManifest")
    story_app.extensions["gateway"].sequencer.run_once()
    page = story_auditor.get(f"/audit/messages/{manifest.id}?lang=en").get_data(as_text=True)
    words = text_of(page)
    with story_app.extensions["gateway"].sessions() as session:
        [entry] = session.scalars(select(AuditEntry).where(AuditEntry.message_id == manifest.message_id))
        size = session.scalar(select(AuditEntry.leaf_index).order_by(AuditEntry.leaf_index.desc()).limit(1))
    receipt = etree.fromstring(manifest.receipt or b"")
    assert manifest.message_id in page and "ArchiveTransferManifest" in page
    with story_app.extensions["gateway"].sessions() as session:
        for party in (manifest.sender_id, manifest.recipient_id):
            participant = session.get(Participant, party)
            assert participant is not None and f"{participant.name} {party}" in words
    for digest in (manifest.body_sha256, manifest.signature_sha256, manifest.certificate_sha256):
        assert digest and digest in page
    assert f"registered to participant {manifest.sender_id}" in words and "serial number" in words
    assert f"{manifest.size} bytes" in words
    # the receipt's log position is the acceptance's entry, now under a signed checkpoint
    assert receipt.findtext("gw:LogPosition/gw:LeafIndex", namespaces=GW) == str(entry.leaf_index)
    assert entry.leaf_hash.hex() in page
    assert f"checkpoint of size {(size or 0) + 1}" in words
    for part in ("Body", "Timestamp", "Routing"):
        assert f'<td data-label="Part">{part}</td>' in page
    assert "message accepted" in words
    # the pull delivery waits in the recipient's mailbox; no delivery receipt yet
    assert "queued" in words and "pull (mailbox)" in words
    assert "Not every delivery is done yet" in words
    # metadata only: nothing of the document itself, and never the identity number
    assert "ZD11000020250001234" not in page and "李明" not in page and GRADUATE_A not in page
    assert "This message used no graduate's authorisation." in words
    assert "Export the evidence bundle" in words


def test_failed_attempts_and_the_dead_letter_are_in_the_story(
    auditor_app: Flask, auditor: FlaskClient, sign: Signer
) -> None:
    push_to(auditor_app, EDUCATION_DEPARTMENT, f"http://127.0.0.1:{free_port()}/recipient", timeout=1, attempts=2)
    code, detail = send(auditor, sign, "destination-registration", UNIVERSITY, EDUCATION_DEPARTMENT)
    assert code is None, detail
    service = auditor_app.extensions["gateway"].delivery
    [message] = messages(auditor_app)
    with auditor_app.extensions["gateway"].sessions() as session:
        [delivery_id] = session.scalars(select(Delivery.id).where(Delivery.message_pk == message.id))
    service.deliver(delivery_id)  # connection refused: waiting for retry
    with transaction(auditor_app.extensions["gateway"].sessions) as session:  # the backoff has passed
        session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id)
            .values(next_attempt_at=auditor_app.extensions["gateway"].clock.now() - timedelta(seconds=1))
        )
    service.deliver(delivery_id)  # the second and last attempt: a dead letter
    page = auditor.get(f"/audit/messages/{message.id}?lang=en").get_data(as_text=True)
    words = text_of(page)
    assert "failed (dead letter)" in words
    assert "delivery attempt failed" in words and "dead-lettered" in words
    assert words.count("ConnectionError") + words.count("Connection refused") >= 2
    assert "Attempts 2" in words


def test_a_delivered_message_can_have_its_delivery_receipt(
    auditor_app: Flask, auditor: FlaskClient, sign: Signer
) -> None:
    code, detail = send(auditor, sign, "destination-registration", UNIVERSITY, EDUCATION_DEPARTMENT)
    assert code is None, detail
    [message] = messages(auditor_app)
    context = auditor_app.extensions["gateway"]
    with transaction(context.sessions) as session:
        [fetched] = mailbox.fetch(session, EDUCATION_DEPARTMENT, 10, context.clock.now(), RetryPolicy())
        mailbox.acknowledge(
            session, EDUCATION_DEPARTMENT, [mailbox.MessageRef(message.message_id, UNIVERSITY)], context.clock.now()
        )
    assert fetched.message_pk == message.id
    words = text_of(auditor.get(f"/audit/messages/{message.id}?lang=en").get_data(as_text=True))
    assert "Every delivery is done" in words
    assert "delivered" in words


def test_entries_of_another_senders_message_with_the_same_id_are_left_out(
    auditor_app: Flask, auditor: FlaskClient, sign: Signer
) -> None:
    shared = str(uuid.uuid4())
    for sender, recipient, document in (
        (PRIVATE_EMPLOYER, UNIVERSITY, current_offer(example("agreement-offer"))),
        (UNIVERSITY, EDUCATION_DEPARTMENT, example("destination-registration")),
    ):
        service = etree.QName(etree.fromstring(document)).localname
        envelope = wrap(document, sender=sender, recipient=recipient, service=service, message_id=shared)
        envelope = sign(envelope, as_=sender)
        assert auditor.post("/soap", data=envelope, content_type="text/xml").status_code == 200
    with auditor_app.extensions["gateway"].sessions() as session:
        first, second = session.scalars(select(Message).order_by(Message.id))
        story = load_story(session, first.id)
        other = load_story(session, second.id)
    assert story is not None and other is not None
    assert [(e.kind, e.facts["sender"]) for e in story.entries] == [("message.accepted", PRIVATE_EMPLOYER)]
    assert [(e.kind, e.facts["sender"]) for e in other.entries] == [("message.accepted", UNIVERSITY)]


def test_a_verification_requests_story_shows_the_grant_use_and_exports_verifiable_evidence(
    auditor_app: Flask, auditor: FlaskClient, sign: Signer, tmp_path: Path
) -> None:
    send_story(auditor, sign)
    context = auditor_app.extensions["gateway"]
    [request] = [m for m in messages(auditor_app) if m.service == "GraduateVerificationRequest"]
    page = auditor.get(f"/audit/messages/{request.id}?lang=en").get_data(as_text=True)
    words = text_of(page)
    assert "used" in words and "identity_match,education,destination" in words and "settlement" in words
    assert GRADUATE_A not in page

    path = f"/audit/messages/{request.id}/evidence"
    token = csrf_token(auditor, f"/audit/messages/{request.id}")
    early = auditor.post(path, data={"csrf_token": token})  # nothing sequenced yet
    assert early.status_code == 302
    assert "signed checkpoint" in text_of(auditor.get(early.headers["Location"] + "?lang=en").get_data(as_text=True))
    assert auditor.post(path).status_code == 400  # CSRF

    context.sequencer.run_once()
    response = auditor.post(path, data={"csrf_token": token})
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == f'attachment; filename="evidence-{request.message_id}.json"'
    bundle = json.loads(response.get_data())
    assert bundle["message"]["message_id"] == request.message_id
    file = tmp_path / "evidence.json"
    file.write_bytes(response.get_data())
    checked = subprocess.run(
        [sys.executable, "-I", str(PROJECT_ROOT / "tools" / "verify_evidence.py"), str(file)],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    with context.sessions() as session:
        exported = session.scalars(select(AuditEntry).where(AuditEntry.kind == "audit.evidence_exported")).all()
    assert [(decode(e.entry)["username"], e.message_id) for e in exported] == [("ada", request.message_id)]
