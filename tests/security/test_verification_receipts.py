"""After acceptance: what is stored about the signature, and the gateway's signed receipt."""

from __future__ import annotations

import base64
import copy
import hashlib
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree
from sqlalchemy import select

from gateway.messages.models import Message
from gateway.pki.devca import DevelopmentCA
from gateway.sdk.receipts import ReceiptInvalid, sent_digests, verify_receipt
from gateway.settings import Settings
from gateway.store.db import transaction
from tests.conftest import AGENCY_CHAOYANG, UNIVERSITY, Credentials, Signer, credentials
from tests.security.variants import (
    one,
    parse,
    receipt_of,
    registration,
    sign_custom,
    signed_digests,
)


@pytest.fixture
def university(settings: Settings) -> Credentials:
    return credentials(settings.keys_dir, UNIVERSITY)


@pytest.fixture
def anchors(settings: Settings) -> tuple[Path, ...]:
    return (settings.keys_dir / "ca" / "ca.cert.pem",)


def test_stored_message_records_the_certificate_and_the_signature(
    client: FlaskClient, app: Flask, sign: Signer, university: Credentials
) -> None:
    message_id = str(uuid.uuid4())
    data = sign(registration(message_id))
    receipt_of(client, data)
    signature_value = one(parse(data), "//ds:Signature/ds:SignatureValue").text or ""
    with transaction(app.extensions["gateway"].sessions) as session:
        stored = session.scalar(select(Message).where(Message.message_id == message_id))
        assert stored is not None
        assert stored.certificate_sha256 == university.certificate.fingerprint(hashes.SHA256()).hex()
        assert stored.signature_sha256 == hashlib.sha256(base64.b64decode("".join(signature_value.split()))).hexdigest()


def test_receipt_acknowledges_the_digests_that_were_signed(
    client: FlaskClient, sign: Signer, anchors: tuple[Path, ...]
) -> None:
    message_id = str(uuid.uuid4())
    data = sign(registration(message_id))
    receipt = receipt_of(client, data)
    sent = signed_digests(parse(data))
    assert set(sent) == {"Body", "Timestamp", "Routing"}
    assert sent_digests(parse(data)) == sent
    verified = verify_receipt(receipt, anchors, sent)
    assert verified.digests == sent
    assert verified.message_id == message_id
    assert verified.status == "accepted"


def test_receipt_acknowledges_a_routing_header_bound_by_the_timestamp(
    client: FlaskClient, university: Credentials, anchors: tuple[Path, ...]
) -> None:
    data = sign_custom(
        registration(), university.key, university.certificate, parts=("Body", "Timestamp"), bind_routing=True
    )
    receipt = receipt_of(client, data)
    binding = one(parse(data), "//wsu:Timestamp/gw:RoutingDigest").text
    verified = verify_receipt(receipt, anchors, sent_digests(parse(data)))
    assert verified.digests["Routing"] == binding
    assert set(verified.digests) == {"Body", "Timestamp", "Routing"}


def _set_text(path: str, value: str) -> Callable[[etree._Element], None]:
    def change(receipt: etree._Element) -> None:
        one(receipt, path).text = value

    change.__name__ = f"{path.rsplit('/', 1)[-1].split(':')[-1]}-changed"
    return change


@pytest.mark.parametrize(
    "alter",
    [
        _set_text("gw:Status", "rejected"),
        _set_text("gw:Recipient", AGENCY_CHAOYANG),
        _set_text("gw:ReceivedAt", "2020-01-01T00:00:00Z"),
        _set_text("gw:SignedParts/gw:Part[@name='Body']/ds:Reference/ds:DigestValue", "AAAA"),
    ],
    ids=lambda alter: alter.__name__,
)
def test_altered_receipt_fails_verification(
    client: FlaskClient, sign: Signer, anchors: tuple[Path, ...], alter: Callable[[etree._Element], None]
) -> None:
    data = sign(registration())
    receipt = receipt_of(client, data)
    verify_receipt(copy.deepcopy(receipt), anchors, sent_digests(parse(data)))  # good as received
    alter(receipt)
    with pytest.raises(ReceiptInvalid):
        verify_receipt(receipt, anchors)


def test_receipt_for_other_digests_fails_verification(
    client: FlaskClient, sign: Signer, anchors: tuple[Path, ...]
) -> None:
    data = sign(registration())
    receipt = receipt_of(client, data)
    sent = signed_digests(parse(data))
    sent["Body"] = base64.b64encode(hashlib.sha256(b"another body").digest()).decode("ascii")
    with pytest.raises(ReceiptInvalid):
        verify_receipt(receipt, anchors, sent)


def test_receipt_fails_against_another_ca(
    client: FlaskClient, sign: Signer, anchors: tuple[Path, ...], tmp_path: Path
) -> None:
    receipt = receipt_of(client, sign(registration()))
    verify_receipt(receipt, anchors)
    other = DevelopmentCA.ensure(tmp_path, datetime.now(UTC))
    with pytest.raises(ReceiptInvalid):
        verify_receipt(receipt, (other.cert_path,))
