"""Messages the gateway itself sends on someone's behalf (the graduate's answer to an agreement offer).

They travel like any other: an envelope with the routing header, signed with WS-Security by the
gateway's key (so recipients check it like any sender's), stored as a :class:`Message` (its
envelope sealed like every stored envelope, ``gateway.messages.payloads``) with its outbox row
and a ``message.originated`` audit entry in the caller's transaction, then delivered by the
:class:`~gateway.delivery.service.DeliveryService` (push) or waiting in the recipient's mailbox
(pull). The sender is the platform participant (``GATEWAY_PLATFORM_ID``, registered by
``gateway init`` with the gateway's certificate).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives import hashes
from lxml import etree
from sqlalchemy import event
from sqlalchemy.orm import Session

from gateway.audit.entries import AuditEvent
from gateway.audit.log import record
from gateway.intake.envelope import split_envelope
from gateway.messages.models import Delivery, Message
from gateway.messages.payloads import PayloadCipher
from gateway.pki.keystore import KeyStore
from gateway.registry.models import Participant
from gateway.sdk.envelope import wrap
from gateway.sdk.signing import sign_envelope_bytes
from gateway.security.wsse import read_security_header
from gateway.xmlparse import parse_untrusted

PLATFORM_KIND = "platform"  # not a kind of the access matrix: the platform sends nothing through the intake


@dataclass(frozen=True)
class Originator:
    """Signs and stores the gateway's own messages as the platform participant ``platform_id``."""

    key_store: KeyStore
    platform_id: str
    payloads: PayloadCipher

    def send(
        self,
        session: Session,
        document: etree._Element,
        service: str,
        recipient: Participant,
        now: datetime,
        correlation_id: str | None = None,
        on_behalf_of: str | None = None,
    ) -> Message:
        """Store ``document`` for ``recipient`` as a signed message with its delivery; returns the message.

        ``on_behalf_of`` says for whom, in the audit entry (an account, never an identity number).
        Push deliveries go to the broker once the caller's transaction commits (:func:`enqueue_after_commit`).
        """
        message_id = str(uuid.uuid4())
        wrapped = wrap(
            document,
            sender=self.platform_id,
            recipient=recipient.id,
            service=service,
            message_id=message_id,
            created_at=now,
            correlation_id=correlation_id,
        )
        certificate = self.key_store.certificate()
        signed = sign_envelope_bytes(wrapped, self.key_store.signing_key(), certificate, now=now)
        root = parse_untrusted(signed).getroot()
        parts = split_envelope(root)
        body = etree.tostring(parts.body, method="c14n", exclusive=True)
        message = Message(
            message_id=message_id,
            sender_id=self.platform_id,
            recipient_id=recipient.id,
            service=service,
            service_version="1",
            correlation_id=correlation_id,
            created_at=now,
            received_at=now,
            size=len(signed),
            body_sha256=hashlib.sha256(body).hexdigest(),
            certificate_sha256=certificate.fingerprint(hashes.SHA256()).hex(),
            signature_sha256=hashlib.sha256(read_security_header(root, parts).signature_value).hexdigest(),
            deliveries=[Delivery.first(recipient.id, recipient.delivery_mode, now)],
        )
        self.payloads.seal_envelope(message, signed)
        session.add(message)
        session.flush()
        record(
            session,
            AuditEvent(
                kind="message.originated",
                at=now,
                message_id=message_id,
                facts={
                    "message_id": message_id,
                    "sender": self.platform_id,
                    "recipient": recipient.id,
                    "service": service,
                    "body_sha256": message.body_sha256,
                    "signature_sha256": message.signature_sha256,
                    "certificate_sha256": message.certificate_sha256,
                    "on_behalf_of": on_behalf_of,
                },
            ),
        )
        return message


def enqueue_after_commit(
    session: Session, deliveries: Mapping[int, str], enqueue: Callable[[list[int], Mapping[int, str]], None]
) -> None:
    """Hand ``deliveries`` (delivery id: recipient id) to ``enqueue`` (``DeliveryService.enqueue``)
    once ``session`` commits.

    Nothing is sent if the transaction rolls back; a push delivery the broker never gets is picked
    up by the outbox sweep.
    """
    if not deliveries:
        return

    def after_commit(_session: Session) -> None:
        enqueue(list(deliveries), deliveries)

    event.listen(session, "after_commit", after_commit, once=True)
