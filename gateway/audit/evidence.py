"""The evidence bundle of one message: everything an outside auditor needs to check it offline.

One JSON document (format ``graduate-exchange-gateway/evidence/v1``, ``docs/audit.md``): the
signed message exactly as received, the gateway's signed receipt, the audit entries about the
message, each with its inclusion proof against one signed checkpoint, that checkpoint, and the
certificates that check the signatures (the gateway's, the sender's as the message carries it,
the trust anchors). ``tools/verify_evidence.py`` checks every signature and proof in it with
nothing but ``cryptography`` and ``lxml``.

The bundle holds the message itself, payload included: it is as confidential as the message.
"""

from __future__ import annotations

import json
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.audit.checkpoint import ORIGIN
from gateway.audit.merkle import inclusion_proof
from gateway.audit.models import AuditEntry
from gateway.audit.nodes import read_planned
from gateway.audit.proofs import b64, latest_checkpoint
from gateway.audit.sequencer import KEY_NAME
from gateway.bootstrap import gateway_key_paths
from gateway.clock import Clock, SystemClock
from gateway.errors import GatewayError, NotFound, PayloadUnavailable, ValidationError
from gateway.intake.envelope import split_envelope
from gateway.messages.keyring import PayloadKeyRing
from gateway.messages.models import Message
from gateway.messages.payloads import PayloadCipher
from gateway.security.wsse import read_security_header
from gateway.settings import Settings
from gateway.xmlparse import parse_untrusted

FORMAT = "graduate-exchange-gateway/evidence/v1"


class EvidenceNotReady(GatewayError):
    """The message's audit entries are not all in a signed checkpoint yet."""


def original_envelope(message: Message, settings: Settings) -> bytes:
    """The envelope exactly as the sender sent it, decrypted from the payload store.

    Raises :class:`NotFound` naming the reason when it cannot be had: purged by the retention
    setting, or sealed under a key that is missing from the key ring.
    """
    try:
        return PayloadCipher(PayloadKeyRing(settings.payload_keys_dir)).open_envelope(message)
    except PayloadUnavailable as exc:
        raise NotFound(f"the signed original of message {message.message_id} is not available: {exc}") from None


def find_message(session: Session, message_id: str, sender: str | None = None) -> Message:
    """The accepted message with ``message_id`` (from ``sender``, needed only when two senders used the id).

    Raises :class:`NotFound` or :class:`ValidationError`.
    """
    query = select(Message).where(Message.message_id == message_id.strip())
    if sender:
        query = query.where(Message.sender_id == sender.strip().upper())
    found = list(session.scalars(query))
    if not found:
        raise NotFound(f"no accepted message {message_id}" + (f" from {sender}" if sender else ""))
    if len(found) > 1:
        senders = ", ".join(sorted(m.sender_id for m in found))
        raise ValidationError("sender", f"message id {message_id} was used by {senders}: name the sender")
    return found[0]


def build_bundle(
    session: Session, message_id: str, settings: Settings, *, sender: str | None = None, clock: Clock | None = None
) -> bytes:
    """The evidence bundle of ``message_id`` as UTF-8 JSON.

    Raises :class:`NotFound` (no such message, or one without a receipt), :class:`ValidationError`
    (the id is ambiguous without ``sender``) or :class:`EvidenceNotReady` (an entry about the message
    is not yet in a signed checkpoint: the sequencer signs one every few seconds).
    """
    message = find_message(session, message_id, sender)
    if message.receipt is None:
        raise NotFound(
            f"message {message.message_id} has no receipt (a plumbing request): there is no evidence to export"
        )
    envelope = original_envelope(message, settings)
    root = parse_untrusted(envelope).getroot()
    sender_certificate = read_security_header(root, split_envelope(root)).certificate
    try:
        point = latest_checkpoint(session)
    except NotFound:
        raise EvidenceNotReady(
            "the audit log has no signed checkpoint yet: the sequencer signs one within seconds; "
            "run `gateway audit sequence` or try again"
        ) from None
    rows = list(
        session.scalars(
            select(AuditEntry).where(AuditEntry.message_id == message.message_id).order_by(AuditEntry.leaf_index)
        )
    )
    if not rows:
        raise NotFound(f"the audit log has no entry about message {message.message_id}")
    pending = [row.leaf_index for row in rows if row.leaf_index >= point.size]
    if pending:
        raise EvidenceNotReady(
            f"the audit entries at leaves {', '.join(map(str, pending))} about message {message.message_id} are not "
            f"in a signed checkpoint yet (the latest covers {point.size} entries): the sequencer signs one within "
            "seconds; run `gateway audit sequence` or try again"
        )
    # Every entry's proof against the one checkpoint, their nodes fetched in one query.
    proofs = read_planned(session, lambda reader: [inclusion_proof(reader, row.leaf_index, point.size) for row in rows])
    entries = [
        {
            "leaf_index": row.leaf_index,
            "leaf_hash": b64(row.leaf_hash),
            "entry": b64(row.entry),
            "inclusion_proof": [b64(h) for h in proof],
        }
        for row, proof in zip(rows, proofs, strict=True)
    ]
    _, gateway_cert = gateway_key_paths(settings.keys_dir)
    bundle: dict[str, Any] = {
        "format": FORMAT,
        "about": "an evidence bundle of the Graduate Exchange Gateway; check it with tools/verify_evidence.py",
        "exported_at": _instant((clock or SystemClock()).now().isoformat()),
        "message": {
            "message_id": message.message_id,
            "sender": message.sender_id,
            "recipient": message.recipient_id,
            "service": message.service,
            "received_at": _instant(message.received_at.isoformat()),
            "envelope": b64(envelope),
        },
        "receipt": b64(message.receipt),
        "log": {
            "origin": ORIGIN,
            "key_name": KEY_NAME,
            "checkpoint": point.note,
            "entries": entries,
        },
        "certificates": {
            "gateway": gateway_cert.read_text(encoding="ascii"),
            "sender": sender_certificate.public_bytes(Encoding.PEM).decode("ascii"),
            "trust_anchors": [
                _pem(c) for path in settings.anchors for c in x509.load_pem_x509_certificates(path.read_bytes())
            ],
        },
    }
    return json.dumps(bundle, indent=2, ensure_ascii=False).encode("utf-8") + b"\n"


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(Encoding.PEM).decode("ascii")


def _instant(iso: str) -> str:
    return iso.replace("+00:00", "Z")
