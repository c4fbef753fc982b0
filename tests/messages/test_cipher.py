"""AES-256-GCM sealing of payloads, without a database: round trip, binding, tampering, keys."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.errors import PayloadCorrupt, PayloadKeyMissing, PayloadPurged
from gateway.messages.keyring import PayloadKeyRing, create_key
from gateway.messages.models import Message
from gateway.messages.payloads import ENVELOPE, NONCE_BYTES, PayloadCipher, Sealed, associated_data
from gateway.sdk.envelope import wrap
from tests.conftest import EDUCATION_DEPARTMENT, HUKOU_OFFICE, UNIVERSITY, Signer, example

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
IDENTITY_NUMBER = b"11010520030315041X"  # the graduate in examples/*.xml


@pytest.fixture
def cipher(tmp_path: Path) -> PayloadCipher:
    create_key(tmp_path, NOW)
    return PayloadCipher(PayloadKeyRing(tmp_path))


def message(message_id: str = "m-1", sender: str = UNIVERSITY) -> Message:
    return Message(message_id=message_id, sender_id=sender)


def test_an_envelope_comes_back_byte_for_byte_and_is_not_readable_sealed(cipher: PayloadCipher, sign: Signer) -> None:
    document = example("destination-registration")
    original = sign(
        wrap(document, sender=UNIVERSITY, recipient=EDUCATION_DEPARTMENT, service="DestinationRegistration")
    )
    assert IDENTITY_NUMBER in original
    stored = message()
    cipher.seal_envelope(stored, original)
    assert stored.envelope_key_id == cipher.ring.current.key_id
    assert stored.sealed_envelope is not None
    assert IDENTITY_NUMBER not in stored.sealed_envelope and b"DestinationRegistration" not in stored.sealed_envelope
    assert len(stored.sealed_envelope) == NONCE_BYTES + len(original) + 16
    assert cipher.open_envelope(stored) == original
    # Plainly AES-256-GCM: anyone with the key and the documented associated data can open it.
    key = cipher.ring.current.secret
    nonce, data = stored.sealed_envelope[:NONCE_BYTES], stored.sealed_envelope[NONCE_BYTES:]
    assert AESGCM(key).decrypt(
        nonce, data, b"gradex-payload-v1\x00envelope\x00" + UNIVERSITY.encode() + b"\x00m-1"
    ) == (original)


def test_every_seal_has_its_own_nonce(cipher: PayloadCipher) -> None:
    first = cipher.seal(b"same bytes", ENVELOPE, UNIVERSITY, "m-1")
    second = cipher.seal(b"same bytes", ENVELOPE, UNIVERSITY, "m-1")
    assert first.data[:NONCE_BYTES] != second.data[:NONCE_BYTES] and first.data != second.data


@pytest.mark.parametrize(
    ("purpose", "sender", "message_id"),
    [(ENVELOPE, UNIVERSITY, "m-2"), (ENVELOPE, HUKOU_OFFICE, "m-1"), ("receipt", UNIVERSITY, "m-1")],
    ids=["other message id", "other sender", "other purpose"],
)
def test_a_payload_opens_only_on_its_own_row_and_purpose(
    cipher: PayloadCipher, purpose: str, sender: str, message_id: str
) -> None:
    sealed = cipher.seal(b"<envelope/>", ENVELOPE, UNIVERSITY, "m-1")
    assert cipher.open(sealed, ENVELOPE, UNIVERSITY, "m-1") == b"<envelope/>"
    with pytest.raises(PayloadCorrupt, match="does not authenticate"):
        cipher.open(sealed, purpose, sender, message_id)


@pytest.mark.parametrize("position", [0, NONCE_BYTES, NONCE_BYTES + 5, -1], ids=["nonce", "first", "middle", "tag"])
def test_a_changed_byte_anywhere_is_detected(cipher: PayloadCipher, position: int) -> None:
    sealed = cipher.seal(b"<envelope>payload</envelope>", ENVELOPE, UNIVERSITY, "m-1")
    changed = bytearray(sealed.data)
    changed[position] ^= 0x01
    with pytest.raises(PayloadCorrupt):
        cipher.open(Sealed(sealed.key_id, bytes(changed)), ENVELOPE, UNIVERSITY, "m-1")
    with pytest.raises(PayloadCorrupt):
        cipher.open(Sealed(sealed.key_id, sealed.data[:-1]), ENVELOPE, UNIVERSITY, "m-1")


def test_after_rotation_old_payloads_open_and_new_ones_use_the_new_key(cipher: PayloadCipher) -> None:
    old = cipher.seal(b"before", ENVELOPE, UNIVERSITY, "m-1")
    new_id = create_key(cipher.ring.directory, NOW, activate=True)
    rotated = PayloadCipher(PayloadKeyRing(cipher.ring.directory))  # a process started after the rotation
    new = rotated.seal(b"after", ENVELOPE, UNIVERSITY, "m-2")
    assert new.key_id == new_id != old.key_id
    assert rotated.open(old, ENVELOPE, UNIVERSITY, "m-1") == b"before"
    assert rotated.open(new, ENVELOPE, UNIVERSITY, "m-2") == b"after"


def test_a_missing_key_a_purged_payload_and_a_legacy_plaintext_one(cipher: PayloadCipher) -> None:
    stored = message()
    cipher.seal_envelope(stored, b"<envelope/>")
    assert stored.envelope_key_id is not None
    create_key(cipher.ring.directory, NOW, activate=True)
    (cipher.ring.directory / f"{stored.envelope_key_id}.key").unlink()
    with pytest.raises(PayloadKeyMissing, match=f"payload key {stored.envelope_key_id} is not in the key ring"):
        PayloadCipher(PayloadKeyRing(cipher.ring.directory)).open_envelope(stored)
    purged = Message(message_id="m-3", sender_id=UNIVERSITY, sealed_envelope=None, payload_purged_at=NOW)
    with pytest.raises(PayloadPurged, match=r"m-3 .* was purged"):
        cipher.open_envelope(purged)
    legacy = Message(message_id="m-4", sender_id=UNIVERSITY, sealed_envelope=b"<old/>", envelope_key_id=None)
    assert cipher.open_envelope(legacy) == b"<old/>"


def test_the_associated_data_is_as_documented() -> None:
    assert associated_data(ENVELOPE, "S", "M") == b"gradex-payload-v1\x00envelope\x00S\x00M"
