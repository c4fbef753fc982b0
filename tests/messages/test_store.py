"""Envelopes sealed in the store (SQLite and PostgreSQL): what the database holds, rotation, reencryption."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid

import pytest
from flask import Flask
from flask.testing import FlaskClient
from signxml.verifier import SignatureConfiguration, XMLVerifier
from sqlalchemy import select, text, update

from gateway.errors import PayloadCorrupt, PayloadKeyMissing
from gateway.messages import keyring
from gateway.messages.keyring import PayloadKeyRing, create_key
from gateway.messages.models import Message
from gateway.messages.payloads import PayloadCipher
from gateway.sdk.envelope import wrap
from gateway.security.policy import ALLOWED_DIGESTS, ALLOWED_SIGNATURE_METHODS, EXCLUSIVE_C14N
from gateway.security.verify import SIGNATURE_LOCATION
from gateway.settings import Settings
from gateway.store.db import transaction
from gateway.xmlparse import parse_untrusted
from tests.conftest import EDUCATION_DEPARTMENT, UNIVERSITY, Signer, credentials, example
from tests.messages.conftest import run_cli

IDENTITY_NUMBER = b"11010520030315041X"  # the graduate in examples/destination-registration.xml


def accept(client: FlaskClient, sign: Signer) -> bytes:
    """Send a signed destination registration (it names the graduate's identity number); returns its bytes."""
    data = sign(
        wrap(
            example("destination-registration"),
            sender=UNIVERSITY,
            recipient=EDUCATION_DEPARTMENT,
            service="DestinationRegistration",
            message_id=str(uuid.uuid4()),
        ),
        as_=UNIVERSITY,
    )
    assert IDENTITY_NUMBER in data
    response = client.post("/soap", data=data, content_type="text/xml")
    assert response.status_code == 200, response.data
    return data


def raw_rows(app: Flask) -> list[tuple[int, bytes | None, str | None]]:
    """(id, envelope column bytes, key id) as the database holds them, read without the ORM."""
    with app.extensions["gateway"].engine.connect() as connection:
        rows = connection.execute(text("SELECT id, envelope, envelope_key_id FROM messages ORDER BY id")).all()
    return [(row[0], bytes(row[1]) if row[1] is not None else None, row[2]) for row in rows]


def messages(app: Flask) -> list[Message]:
    with transaction(app.extensions["gateway"].sessions) as session:
        return list(session.scalars(select(Message).order_by(Message.id)))


def test_the_database_holds_no_identity_number_and_the_original_comes_back_signed(
    store_app: Flask, sign: Signer, settings: Settings
) -> None:
    sent = accept(store_app.test_client(), sign)
    context = store_app.extensions["gateway"]
    [(_, column, key_id)] = raw_rows(store_app)
    assert column is not None and key_id == context.payloads.ring.current.key_id
    assert IDENTITY_NUMBER not in column and b"DestinationRegistration" not in column
    assert sent[40:80] not in column
    [stored] = messages(store_app)
    opened = context.payloads.open_envelope(stored)
    assert opened == sent  # byte for byte
    # The sender's own signature verifies over the decrypted envelope, and is the one the row names.
    root = parse_untrusted(opened).getroot()
    config = SignatureConfiguration(
        location=SIGNATURE_LOCATION,
        expect_references=3,
        signature_methods=ALLOWED_SIGNATURE_METHODS,
        digest_algorithms=ALLOWED_DIGESTS,
        default_reference_c14n_method=EXCLUSIVE_C14N,
    )
    certificate = credentials(settings.keys_dir, UNIVERSITY).certificate
    XMLVerifier().verify(root, x509_cert=certificate, id_attribute="Id", expect_config=config)
    value = root.findtext(".//{http://www.w3.org/2000/09/xmldsig#}SignatureValue") or ""
    assert hashlib.sha256(base64.b64decode("".join(value.split()))).hexdigest() == stored.signature_sha256


def test_a_ciphertext_moved_to_another_row_does_not_open(store_app: Flask, sign: Signer) -> None:
    client = store_app.test_client()
    accept(client, sign)
    accept(client, sign)
    (_, first_column, _), (second, _, _) = raw_rows(store_app)
    context = store_app.extensions["gateway"]
    with transaction(context.sessions) as session:
        session.execute(update(Message).where(Message.id == second).values(sealed_envelope=first_column))
    one, other = messages(store_app)
    assert context.payloads.open_envelope(one).startswith(b"<")
    with pytest.raises(PayloadCorrupt, match="does not authenticate"):
        context.payloads.open_envelope(other)


def test_rotation_then_reencryption_moves_every_envelope_to_the_new_key(
    store_app: Flask, sign: Signer, store_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keyring, "_RELOAD_SECONDS", 0.0)  # the running app notices a rotation at once
    client = store_app.test_client()
    context = store_app.extensions["gateway"]
    old_key = context.payloads.ring.current.key_id
    before = [accept(client, sign) for _ in range(3)]
    # A row stored before migration 0008: plaintext, no key id.
    legacy = raw_rows(store_app)[0][0]
    with transaction(context.sessions) as session:
        session.execute(
            update(Message).where(Message.id == legacy).values(sealed_envelope=before[0], envelope_key_id=None)
        )

    result = run_cli(store_settings, "payloads", "rotate-key")
    assert result.exit_code == 0, result.output
    new_key = PayloadKeyRing(store_settings.payload_keys_dir).current.key_id
    assert new_key != old_key and new_key in result.output
    after = accept(client, sign)  # the running app follows the new current key
    assert [key for _, _, key in raw_rows(store_app)] == [None, old_key, old_key, new_key]
    # Old envelopes still open under the old key.
    assert [context.payloads.open_envelope(m) for m in messages(store_app)] == [*before, after]

    status = run_cli(store_settings, "payloads", "status", "--json")
    assert status.exit_code == 0, status.output
    report = json.loads(status.output)
    assert report["current_key"] == new_key and report["plaintext"] == 1
    assert report["keys"] == {
        old_key: {"envelopes": 2, "current": False, "in_key_ring": True},
        new_key: {"envelopes": 1, "current": True, "in_key_ring": True},
    }

    result = run_cli(store_settings, "payloads", "reencrypt", "--batch", "2")
    assert result.exit_code == 0, result.output
    assert f"3 envelopes rewrapped under payload key {new_key}" in result.output
    assert {key for _, _, key in raw_rows(store_app)} == {new_key}
    assert all(column is not None and IDENTITY_NUMBER not in column for _, column, _ in raw_rows(store_app))
    # The old key can go now: everything opens with the new one alone.
    (store_settings.payload_keys_dir / f"{old_key}.key").unlink()
    fresh = PayloadCipher(PayloadKeyRing(store_settings.payload_keys_dir))
    assert [fresh.open_envelope(m) for m in messages(store_app)] == [*before, after]
    again = run_cli(store_settings, "payloads", "reencrypt")
    assert again.exit_code == 0 and "0 envelopes rewrapped" in again.output


def test_reencryption_stops_clearly_at_an_envelope_whose_key_is_lost(
    store_app: Flask, sign: Signer, store_settings: Settings
) -> None:
    client = store_app.test_client()
    accept(client, sign)
    old_key = store_app.extensions["gateway"].payloads.ring.current.key_id
    create_key(store_settings.payload_keys_dir, store_app.extensions["gateway"].clock.now())
    (store_settings.payload_keys_dir / f"{old_key}.key").unlink()
    result = run_cli(store_settings, "payloads", "reencrypt")
    assert result.exit_code == 1
    assert f"payload key {old_key} is not in the key ring" in result.output
    status = json.loads(run_cli(store_settings, "payloads", "status", "--json").output)
    assert status["keys"][old_key] == {"envelopes": 1, "current": False, "in_key_ring": False}
    with pytest.raises(PayloadKeyMissing):
        PayloadCipher(PayloadKeyRing(store_settings.payload_keys_dir)).open_envelope(messages(store_app)[0])
