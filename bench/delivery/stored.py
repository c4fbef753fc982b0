"""Accepted messages stored and queued without the HTTP intake, for the worker's memory run.

The intake takes 60-90 signed messages a second on this machine, so 100,000 messages through it
take half an hour; the worker delivers about three times faster. :class:`StoredIntake` writes
what the intake's ``Store`` stage writes for an accepted message, with the gateway's own parts:
the envelope parsed by the hardened parser and split (``gateway.intake.envelope``), its routing
header read, its WS-Security header read for the signature's digest, the ``Message`` with its
envelope sealed (``PayloadCipher``) and its ``Delivery``, the ``message.accepted`` audit entry
(``gateway.intake.pipeline.acceptance_event``, as the intake records it),
500 messages to a transaction; then it queues the deliveries with the gateway's own
``DeliveryService.enqueue``. What it leaves out is the intake's checking: signature verification,
certificate chain, replay, schema and domain rules (``bench/intake`` measures those).

The envelopes are the benchmark's own (``traffic.sign_envelopes``: destination registrations,
each signed by the university's demo key under its own message id), so every delivery the worker
makes is a real one: the stored original as its sender signed it, in a ``gw:Delivery`` that the
gateway signs and the recipient verifies.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from lxml import etree
from traffic import SENDER

from gateway.audit.entries import AuditEvent
from gateway.audit.log import record
from gateway.intake.envelope import read_routing, split_envelope
from gateway.intake.pipeline import acceptance_event
from gateway.messages.models import Delivery, Message
from gateway.registry.models import Participant
from gateway.security.wsse import read_security_header
from gateway.settings import Settings
from gateway.store.db import transaction
from gateway.web.app import create_app
from gateway.xmlparse import parse_untrusted

BATCH = 500  # messages per transaction


class StoredIntake:
    """Stores signed envelopes as accepted messages and queues their deliveries (one app, reused)."""

    def __init__(self, env: dict[str, str]) -> None:
        settings = Settings.from_env(env)
        self.app = create_app(settings)
        self.context = self.app.extensions["gateway"]
        certificate = (settings.keys_dir / "participants" / SENDER / "cert.pem").read_bytes()
        self.certificate_sha256 = x509.load_pem_x509_certificate(certificate).fingerprint(hashes.SHA256()).hex()

    def close(self) -> None:
        self.context.delivery.broker.close()
        self.context.engine.dispose()

    def accept(self, envelopes: Sequence[tuple[str, bytes]]) -> list[str]:
        """Store ``envelopes`` (message id, signed envelope) as accepted and queue their deliveries;
        returns the message ids."""
        accepted: list[str] = []
        for start in range(0, len(envelopes), BATCH):
            batch = envelopes[start : start + BATCH]
            with transaction(self.context.sessions) as session:
                routing = read_routing(split_envelope(parse_untrusted(batch[0][1]).getroot()).routing)
                participant = session.get(Participant, routing.recipient.participant)  # all go to one
                assert participant is not None, routing
                messages = [self._message(envelope, participant) for _, envelope in batch]
                session.add_all(messages)
                session.flush()
                for message in messages:
                    record(session, _accepted(message))
                deliveries = {d.id: d.recipient_id for m in messages for d in m.deliveries}
            self.context.delivery.enqueue(list(deliveries), deliveries)
            accepted += [message_id for message_id, _ in batch]
        return accepted

    def _message(self, envelope: bytes, recipient: Participant) -> Message:
        root = parse_untrusted(envelope).getroot()
        parts = split_envelope(root)
        routing = read_routing(parts.routing)
        now = datetime.now(UTC)
        body = etree.tostring(parts.body, method="c14n", exclusive=True)
        message = Message(
            message_id=routing.message_id,
            sender_id=routing.sender,
            recipient_id=recipient.id,
            service=routing.service_name,
            service_version=routing.service_version,
            correlation_id=routing.correlation_id,
            created_at=routing.created_at,
            received_at=now,
            size=len(envelope),
            body_sha256=hashlib.sha256(body).hexdigest(),
            certificate_sha256=self.certificate_sha256,
            signature_sha256=hashlib.sha256(read_security_header(root, parts).signature_value).hexdigest(),
            deliveries=[Delivery.first(recipient.id, recipient.delivery_mode, now)],
        )
        self.context.payloads.seal_envelope(message, envelope)
        return message


def _accepted(message: Message) -> AuditEvent:
    assert message.signature_sha256 is not None and message.certificate_sha256 is not None
    return acceptance_event(
        message_id=message.message_id,
        sender=message.sender_id,
        recipient=message.recipient_id,
        service=message.service,
        received_at=message.received_at,
        body_sha256=message.body_sha256,
        signature_sha256=message.signature_sha256,
        certificate_sha256=message.certificate_sha256,
    )
