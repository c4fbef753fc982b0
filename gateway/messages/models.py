"""An accepted message and, in the same transaction, its delivery record (the outbox row).

The delivery stage (``gateway.delivery``) works the outbox; until it is built (issue 5) accepted
messages wait in status ``accepted``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gateway.registry.models import DeliveryMode
from gateway.store.base import Base, UtcDateTime


class DeliveryStatus(StrEnum):
    """The lifecycle of a delivery, after AS4's (READY_TO_SEND ... ACKNOWLEDGED, SEND_FAILURE).

    accepted -> queued -> in_delivery -> delivered (acknowledged by the recipient)
                            +-> waiting_for_retry -> queued ... -> failed (dead letter)
    A pull delivery is ``queued`` while it waits in the mailbox and ``in_delivery`` once fetched
    (offered again after the visibility timeout until acknowledged).
    """

    ACCEPTED = "accepted"
    QUEUED = "queued"
    IN_DELIVERY = "in_delivery"
    DELIVERED = "delivered"
    WAITING_FOR_RETRY = "waiting_for_retry"
    FAILED = "failed"


class Message(Base):
    """A message the gateway accepted: the envelope as received (sealed), and its routing facts.

    Read the envelope only through ``PayloadCipher.open_envelope`` (``gateway.messages.payloads``):
    ``sealed_envelope`` is AES-256-GCM ciphertext under ``envelope_key_id``, plaintext when the key
    id is NULL (stored before migration 0008), and NULL once the retention purge erased it
    (``payload_purged_at``). The digests and the receipt stay after a purge.
    """

    __tablename__ = "messages"
    __table_args__ = (UniqueConstraint("sender_id", "message_id", name="uq_messages_sender_message_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(36))
    # No index of its own: the unique key (sender_id, message_id) leads with it (migration 0014).
    sender_id: Mapped[str] = mapped_column(ForeignKey("participants.id"))
    recipient_id: Mapped[str] = mapped_column(ForeignKey("participants.id"), index=True)
    service: Mapped[str] = mapped_column(String(64), index=True)
    service_version: Mapped[str] = mapped_column(String(16))
    correlation_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    size: Mapped[int] = mapped_column(Integer)
    body_sha256: Mapped[str] = mapped_column(String(64))
    certificate_sha256: Mapped[str | None] = mapped_column(String(64))
    signature_sha256: Mapped[str | None] = mapped_column(String(64))
    sealed_envelope: Mapped[bytes | None] = mapped_column("envelope", LargeBinary)
    envelope_key_id: Mapped[str | None] = mapped_column(String(32))
    payload_purged_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    receipt: Mapped[bytes | None] = mapped_column(LargeBinary)  # ids, times and digests only: not sealed

    deliveries: Mapped[list[Delivery]] = relationship(back_populates="message", cascade="all, delete-orphan")


class Delivery(Base):
    """The delivery of one message to one recipient."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_pk: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    recipient_id: Mapped[str] = mapped_column(ForeignKey("participants.id"), index=True)
    mode: Mapped[str] = mapped_column(String(4), default="pull")  # push or pull, from the recipient
    status: Mapped[str] = mapped_column(String(20), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    enqueued_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # in delivery since (push) / fetched at (pull)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    message: Mapped[Message] = relationship(back_populates="deliveries")

    @classmethod
    def first(cls, recipient_id: str, mode: str, at: datetime) -> Delivery:
        """A new message's delivery to a recipient receiving by ``mode`` (push or pull).

        A pull delivery waits in the recipient's mailbox from the start; a push delivery is queued
        once the broker has it (after the accepting transaction commits).
        """
        return cls(**cls.first_values(recipient_id, mode, at))

    @staticmethod
    def first_values(recipient_id: str, mode: str, at: datetime) -> dict[str, object]:
        """The columns of :meth:`first`'s delivery (less its message), for a Core INSERT."""
        pull = mode == DeliveryMode.PULL
        return {
            "recipient_id": recipient_id,
            "mode": mode,
            "status": DeliveryStatus.QUEUED if pull else DeliveryStatus.ACCEPTED,
            "enqueued_at": at if pull else None,
            "attempts": 0,
            "created_at": at,
            "updated_at": at,
        }
