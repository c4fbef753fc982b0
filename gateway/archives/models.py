"""One archive transfer: requested, dispatched (manifest), received (receipt), with its deadlines."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.base import Base, UtcDateTime


class TransferStatus:
    REQUESTED = "requested"
    DISPATCHED = "dispatched"
    RECEIVED = "received"


class ArchiveTransfer(Base):
    __tablename__ = "archive_transfers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    identity_hash: Mapped[str] = mapped_column(String(64), index=True)
    transfer_number: Mapped[str] = mapped_column(String(32), index=True)
    request_id: Mapped[str | None] = mapped_column(String(64), index=True)
    manifest_id: Mapped[str | None] = mapped_column(String(64), index=True)
    holder_id: Mapped[str] = mapped_column(ForeignKey("participants.id"), index=True)
    receiver_id: Mapped[str] = mapped_column(ForeignKey("participants.id"), index=True)
    leaves_late: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(12), index=True)
    requested_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    dispatch_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    dispatched_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    dispatch_method: Mapped[str | None] = mapped_column(String(32))
    waybill_number: Mapped[str | None] = mapped_column(String(40))
    documents: Mapped[int] = mapped_column(Integer, default=0)
    receipt_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    received_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    documents_missing: Mapped[int] = mapped_column(Integer, default=0)
    documents_damaged: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
