"""MessageStatus and DeliveryReceiptRequest through /soap: only the original sender may ask."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree
from sqlalchemy import select, update

from gateway.audit.entries import decode
from gateway.audit.models import AuditEntry
from gateway.intake.catalog import GATEWAY_NS
from gateway.messages.models import Delivery, Message
from gateway.sdk.mailbox import read_status, verify_delivery_receipt
from gateway.sdk.receipts import ReceiptInvalid, verify_gateway_signed
from gateway.settings import Settings
from gateway.store.db import transaction
from gateway.xmlparse import parse_untrusted
from tests.conftest import EDUCATION_DEPARTMENT, HUKOU_OFFICE, Signer, require
from tests.mailbox.helpers import (
    NS,
    SENDER,
    SERVICE,
    acknowledge_request,
    ask,
    deliveries,
    fetch_request,
    latest_message_id,
    plumbing_envelope,
    receipt_request,
    send_to_pull_recipient,
    status_request,
)

DELIVERY_RECEIPT = f"{{{GATEWAY_NS}}}DeliveryReceipt"


def fetch_and_acknowledge(client: FlaskClient, sign: Signer, message_id: str) -> None:
    assert ask(client, sign, fetch_request(), EDUCATION_DEPARTMENT).fault_code is None
    answer = ask(client, sign, acknowledge_request((message_id, SENDER)), EDUCATION_DEPARTMENT)
    assert answer.body.findtext("gw:Result/gw:Status", namespaces=NS) == "acknowledged"


def test_the_sender_follows_its_message_through_the_lifecycle(app: Flask, client: FlaskClient, sign: Signer) -> None:
    message_id = send_to_pull_recipient(client, sign)

    def status() -> etree._Element:
        answer = ask(client, sign, status_request(message_id), SENDER)
        assert app.extensions["gateway"].catalog.schema.validate(answer.envelope)
        return answer.body

    waiting = read_status(status())
    assert (waiting.message_id, waiting.service) == (message_id, SERVICE)
    [state] = waiting.deliveries
    assert (state.recipient, state.mode, state.status, state.attempts) == (EDUCATION_DEPARTMENT, "pull", "queued", 0)
    assert state.queued_at == state.created_at == waiting.received_at
    assert (state.last_attempt_at, state.delivered_at, state.last_error) == (None, None, None)

    ask(client, sign, fetch_request(), EDUCATION_DEPARTMENT)
    [fetched] = read_status(status()).deliveries
    assert (fetched.status, fetched.attempts) == ("in_delivery", 1)
    assert fetched.last_attempt_at is not None

    fetch_and_acknowledge(client, sign, message_id)
    [done] = read_status(status()).deliveries
    assert done.status == "delivered"
    assert done.delivered_at is not None and done.delivered_at >= (fetched.last_attempt_at or done.delivered_at)


def test_the_last_error_and_the_next_attempt_are_reported(app: Flask, client: FlaskClient, sign: Signer) -> None:
    message_id = send_to_pull_recipient(client, sign)
    retry_at = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
    with transaction(app.extensions["gateway"].sessions) as session:
        session.execute(
            update(Delivery).values(
                status="waiting_for_retry", attempts=2, last_error="ConnectTimeout: 2 s", next_attempt_at=retry_at
            )
        )
    [state] = read_status(ask(client, sign, status_request(message_id), SENDER).body).deliveries
    assert (state.status, state.attempts, state.last_error, state.next_attempt_at) == (
        "waiting_for_retry",
        2,
        "ConnectTimeout: 2 s",
        retry_at,
    )


@pytest.mark.parametrize("asker", [EDUCATION_DEPARTMENT, HUKOU_OFFICE])
def test_only_the_original_sender_may_ask(client: FlaskClient, sign: Signer, asker: str) -> None:
    message_id = send_to_pull_recipient(client, sign)
    for request in (status_request(message_id), receipt_request(message_id)):
        answer = ask(client, sign, request, asker)
        assert (answer.status_code, answer.fault_code) == (500, "MESSAGE_UNKNOWN")
        assert message_id in answer.fault_message


def test_unknown_and_plumbing_message_ids_are_unknown(app: Flask, client: FlaskClient, sign: Signer) -> None:
    assert ask(client, sign, status_request(str(uuid.uuid4())), SENDER).fault_code == "MESSAGE_UNKNOWN"
    ask(client, sign, fetch_request(), SENDER)
    own_fetch = latest_message_id(app, SENDER)  # a plumbing request: nothing was delivered
    assert ask(client, sign, status_request(own_fetch), SENDER).fault_code == "MESSAGE_UNKNOWN"
    assert ask(client, sign, receipt_request(own_fetch), SENDER).fault_code == "MESSAGE_UNKNOWN"


def test_a_delivery_receipt_only_once_delivered_then_signed_by_the_gateway(
    app: Flask, client: FlaskClient, sign: Signer, anchors: tuple[Path, ...]
) -> None:
    message_id = send_to_pull_recipient(client, sign)
    early = ask(client, sign, receipt_request(message_id), SENDER)
    assert early.fault_code == "NOT_YET_DELIVERED"
    assert f"to {EDUCATION_DEPARTMENT} queued" in early.fault_message
    ask(client, sign, fetch_request(), EDUCATION_DEPARTMENT)
    fetched = ask(client, sign, receipt_request(message_id), SENDER)
    assert fetched.fault_code == "NOT_YET_DELIVERED" and "in_delivery" in fetched.fault_message

    answer = ask(client, sign, acknowledge_request((message_id, SENDER)), EDUCATION_DEPARTMENT)
    assert answer.fault_code is None
    answer = ask(client, sign, receipt_request(message_id), SENDER)
    assert app.extensions["gateway"].catalog.schema.validate(answer.envelope)
    receipt = answer.body
    assert receipt.tag == DELIVERY_RECEIPT
    signed = verify_gateway_signed(receipt, DELIVERY_RECEIPT, anchors)
    verified = verify_delivery_receipt(receipt, anchors, message_id, SENDER)
    assert signed.findtext("gw:MessageId", namespaces=NS) == message_id
    [delivery] = deliveries(app)
    assert verified.delivered == {EDUCATION_DEPARTMENT: delivery.delivered_at}
    with transaction(app.extensions["gateway"].sessions) as session:
        stored = session.scalars(select(Message).where(Message.message_id == message_id)).one()
        body_sha256, acceptance = stored.body_sha256, stored.receipt
    # The digest of the Body the sender signed, as the acceptance receipt acknowledged it.
    assert acceptance is not None
    body_digest = (
        parse_untrusted(acceptance)
        .getroot()
        .findtext(
            "gw:SignedParts/gw:Part[@name='Body']/ds:Reference/ds:DigestValue",
            namespaces={**NS, "ds": "http://www.w3.org/2000/09/xmldsig#"},
        )
    )
    assert verified.body_sha256 == body_sha256 == base64.b64decode(body_digest or "").hex()
    # The issue is an audit entry naming the receipt by the digest of its canonical form (once: the
    # early requests were refused and issued nothing).
    with transaction(app.extensions["gateway"].sessions) as session:
        issued = [
            decode(e) for e in session.scalars(select(AuditEntry.entry).where(AuditEntry.kind == "receipt.issued"))
        ]
    assert issued == [
        {
            **issued[0],
            "receipt": "delivery",
            "message_id": message_id,
            "sender": SENDER,
            "receipt_sha256": hashlib.sha256(etree.tostring(receipt, method="c14n", exclusive=True)).hexdigest(),
        }
    ]
    # Changed after signing, it no longer verifies.
    tampered = etree.fromstring(etree.tostring(receipt).replace(SENDER.encode(), HUKOU_OFFICE.encode()))
    with pytest.raises(ReceiptInvalid):
        verify_gateway_signed(tampered, DELIVERY_RECEIPT, anchors)
    with pytest.raises(ReceiptInvalid):
        verify_delivery_receipt(receipt, anchors, str(uuid.uuid4()))


@pytest.mark.slow  # starts xmlsec1
def test_the_delivery_receipt_verifies_with_xmlsec1(
    client: FlaskClient, sign: Signer, settings: Settings, tmp_path: Path
) -> None:
    require("xmlsec1", lambda: subprocess.run(["xmlsec1", "--version"], capture_output=True, check=True, timeout=30))
    message_id = send_to_pull_recipient(client, sign)
    fetch_and_acknowledge(client, sign, message_id)
    request = plumbing_envelope(sign, receipt_request(message_id), SENDER)
    response = client.post("/soap", data=request, content_type="text/xml")
    assert response.status_code == 200, response.text
    path = tmp_path / "delivery-receipt.xml"
    path.write_bytes(response.data)
    ca = settings.keys_dir / "ca" / "ca.cert.pem"
    command = [shutil.which("xmlsec1") or "xmlsec1", "--verify", "--trusted-pem", str(ca)]
    id_attr = [
        "--enabled-key-data",
        "x509",
        "--id-attr:Id",
        f"{GATEWAY_NS}:DeliveryReceipt",
        "--node-xpath",
        "//*[local-name()='DeliveryReceipt']/*[local-name()='Signature']",
        str(path),
    ]
    result = subprocess.run([*command, *id_attr], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert "SignedInfo References (ok/all): 1/1" in result.stderr
