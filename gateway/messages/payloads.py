"""Payloads at rest: every stored envelope is encrypted with AES-256-GCM under the current payload key.

A sealed payload is ``nonce (12 random bytes) || ciphertext || tag (16 bytes)``, and the id of its
key (``gateway.messages.keyring``) is stored beside it (``messages.envelope_key_id``). The
associated data binds the ciphertext to its row and its purpose::

    b"gradex-payload-v1" 0x00 purpose 0x00 sender id 0x00 message id

(sender and message id are the row's unique key), so a ciphertext copied onto another message's
row does not authenticate. Decryption gives back the envelope byte for byte, so the sender's
signature still verifies.

Only the envelope is sealed: the gateway's receipt holds ids, times and digests, no personal
data, and stays readable evidence (``docs/operations.md``). A message stored before encryption
(migration 0008) has key id NULL and a plaintext envelope, read as such until ``gateway payloads
reencrypt`` seals it. A purged message (``gateway.messages.retention``) has no envelope at all.

:meth:`PayloadCipher.open_envelope` is the one way to read a stored envelope.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.orm import Session

from gateway.errors import PayloadCorrupt, PayloadPurged
from gateway.messages.keyring import PayloadKeyRing
from gateway.messages.models import Message

NONCE_BYTES = 12
ENVELOPE = "envelope"


@dataclass(frozen=True)
class Sealed:
    key_id: str
    data: bytes


def associated_data(purpose: str, sender_id: str, message_id: str) -> bytes:
    """What a sealed payload is bound to (authenticated, not encrypted)."""
    return b"\x00".join(part.encode("utf-8") for part in ("gradex-payload-v1", purpose, sender_id, message_id))


class PayloadCipher:
    """Seals payloads under the key ring's current key and opens them under any key of the ring."""

    def __init__(self, ring: PayloadKeyRing) -> None:
        self.ring = ring

    def seal(self, plaintext: bytes, purpose: str, sender_id: str, message_id: str) -> Sealed:
        key = self.ring.current
        nonce = os.urandom(NONCE_BYTES)  # random 96-bit nonce: safe far beyond 2^32 payloads per key
        data = AESGCM(key.secret).encrypt(nonce, plaintext, associated_data(purpose, sender_id, message_id))
        return Sealed(key.key_id, nonce + data)

    def open(self, sealed: Sealed, purpose: str, sender_id: str, message_id: str) -> bytes:
        """The plaintext; raises :class:`PayloadKeyMissing` or :class:`PayloadCorrupt`."""
        key = self.ring.get(sealed.key_id)
        nonce, data = sealed.data[:NONCE_BYTES], sealed.data[NONCE_BYTES:]
        try:
            return AESGCM(key.secret).decrypt(nonce, data, associated_data(purpose, sender_id, message_id))
        except InvalidTag:
            raise PayloadCorrupt(
                f"the stored {purpose} of message {message_id} from {sender_id} does not authenticate under key "
                f"{sealed.key_id}: it was changed or belongs to another message"
            ) from None

    def seal_envelope(self, message: Message, envelope: bytes) -> None:
        """Store ``envelope`` sealed on ``message`` (whose sender and message id must be set)."""
        sealed = self.seal(envelope, ENVELOPE, message.sender_id, message.message_id)
        message.sealed_envelope = sealed.data
        message.envelope_key_id = sealed.key_id

    def open_envelope(self, message: Message) -> bytes:
        """The envelope of ``message`` exactly as it was received.

        Raises :class:`PayloadPurged` after the retention purge, :class:`PayloadKeyMissing` when
        its key is not in the key ring, :class:`PayloadCorrupt` when the ciphertext was changed.
        """
        if message.payload_purged_at is not None or message.sealed_envelope is None:
            raise PayloadPurged(
                f"the envelope of message {message.message_id} from {message.sender_id} was purged "
                f"at {message.payload_purged_at} (GATEWAY_PAYLOAD_RETENTION_DAYS); its digests remain"
            )
        if message.envelope_key_id is None:
            return message.sealed_envelope  # stored before encryption (migration 0008): plaintext
        sealed = Sealed(message.envelope_key_id, message.sealed_envelope)
        return self.open(sealed, ENVELOPE, message.sender_id, message.message_id)


def _not_under(key_id: str) -> ColumnElement[bool]:
    """A stored (not purged) envelope that is plaintext or sealed under another key than ``key_id``."""
    return and_(
        Message.payload_purged_at.is_(None),
        Message.sealed_envelope.is_not(None),
        or_(Message.envelope_key_id.is_(None), Message.envelope_key_id != key_id),
    )


@dataclass(frozen=True)
class Batch:
    last_pk: int | None  # the last row looked at; None when there was none left
    rewrapped: int


def reencrypt_batch(session: Session, cipher: PayloadCipher, after_pk: int, limit: int) -> Batch:
    """Seal under the current key up to ``limit`` envelopes (row ids above ``after_pk``, in order) that
    are under another key or still plaintext.

    Each row is rewritten by a conditional UPDATE on the key id it was read with, so a row purged or
    rewrapped meanwhile by another process is left alone. Raises :class:`PayloadKeyMissing` or
    :class:`PayloadCorrupt` for a row it cannot open (the caller's transaction then rolls back).
    """
    current = cipher.ring.current.key_id
    messages = session.scalars(
        select(Message).where(Message.id > after_pk, _not_under(current)).order_by(Message.id).limit(limit)
    ).all()
    rewrapped = 0
    for message in messages:
        sealed = cipher.seal(cipher.open_envelope(message), ENVELOPE, message.sender_id, message.message_id)
        key_id = message.envelope_key_id
        unchanged = Message.envelope_key_id.is_(None) if key_id is None else Message.envelope_key_id == key_id
        result = session.execute(
            update(Message)
            .where(Message.id == message.id, Message.payload_purged_at.is_(None), unchanged)
            .values(sealed_envelope=sealed.data, envelope_key_id=sealed.key_id)
            .execution_options(synchronize_session=False)
        )
        rewrapped += result.rowcount  # type: ignore[attr-defined]
    return Batch(messages[-1].id if messages else None, rewrapped)


def reencrypt(
    sessions: Callable[[], Session], cipher: PayloadCipher, batch: int, progress: Callable[[int], object]
) -> int:
    """Rewrap every envelope not under the current key, one transaction per batch; returns how many.

    ``progress(n)`` is called after each batch with the number of rows it rewrapped.
    """
    after, total = 0, 0
    while True:
        with sessions() as session, session.begin():
            done = reencrypt_batch(session, cipher, after, batch)
        if done.last_pk is None:
            return total
        total += done.rewrapped
        progress(done.rewrapped)
        after = done.last_pk


def count_to_reencrypt(session: Session, cipher: PayloadCipher) -> int:
    """Envelopes not (yet) under the current key: plaintext ones and those under older keys."""
    current = cipher.ring.current.key_id
    return session.scalar(select(func.count()).select_from(Message).where(_not_under(current))) or 0
