"""One archive transfer: requested, dispatched (manifest), received (receipt), with its deadlines."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.base import Base, UtcDateTime


class TransferStatus:
    REQUESTED = "requested"
    DISPATCHED = "dispatched"
    RECEIVED = "received"


OPEN_STATUSES = (TransferStatus.REQUESTED, TransferStatus.DISPATCHED)


class ArchiveTransfer(Base):
    """One transfer of a graduate's archive from its holder to a receiving unit.

    The database decides the races two concurrent messages could run (``gateway.archives.services``
    turns a conflict into ``ARCHIVE_TRANSFER_DUPLICATE``): a manifest id is declared once per holder,
    a request id used once between a holder and a receiver, and a graduate has at most one open
    (requested or dispatched) transfer at a time.
    """

    __tablename__ = "archive_transfers"
    __table_args__ = (
        UniqueConstraint("holder_id", "manifest_id", name="uq_archive_transfers_holder_manifest"),
        UniqueConstraint("holder_id", "receiver_id", "request_id", name="uq_archive_transfers_holder_receiver_request"),
        Index(
            "uq_archive_transfers_open_per_graduate",
            "identity_hash",
            unique=True,
            sqlite_where=text("status IN ('requested', 'dispatched')"),
            postgresql_where=text("status IN ('requested', 'dispatched')"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    identity_hash: Mapped[str] = mapped_column(String(64), index=True)
    transfer_number: Mapped[str] = mapped_column(String(32), index=True)
    request_id: Mapped[str | None] = mapped_column(String(64), index=True)
    manifest_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # No index of its own: both unique keys lead with it (migration 0014).
    holder_id: Mapped[str] = mapped_column(ForeignKey("participants.id"))
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
