"""The audit log's tables: entries (leaves), the tree's complete-subtree nodes, and checkpoints.

Only ``gateway.audit.log.record`` writes entries; only the sequencer writes nodes and checkpoints.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.base import Base, UtcDateTime


class AuditEntry(Base):
    __tablename__ = "audit_entries"

    leaf_index: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    kind: Mapped[str] = mapped_column(String(40), index=True)
    message_id: Mapped[str | None] = mapped_column(String(36), index=True)
    entry: Mapped[bytes] = mapped_column(LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary, index=True)  # proofs by leaf hash


class AuditLogState(Base):
    """One row: how many entries exist (``size``) and how many the tree has integrated."""

    __tablename__ = "audit_log_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(Integer, default=0)
    integrated: Mapped[int] = mapped_column(Integer, default=0)


class AuditNode(Base):
    """The root of the complete subtree ``(level, index)``."""

    __tablename__ = "audit_nodes"

    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    index: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary)


class AuditCheckpoint(Base):
    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    size: Mapped[int] = mapped_column(Integer, index=True)
    root: Mapped[bytes] = mapped_column(LargeBinary)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    note: Mapped[str] = mapped_column(Text)


class AuditPending(Base):
    """An entry written by an intake transaction, waiting for the sequencer to give it a leaf index.

    ``leaf_index`` is set (and the entry copied into ``audit_entries``) by
    ``gateway.audit.log.sequence_pending``; sequenced rows are deleted after a while.
    """

    __tablename__ = "audit_pending"
    __table_args__ = (Index("ix_audit_pending_waiting", "leaf_index", "id"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    kind: Mapped[str] = mapped_column(String(40))
    message_id: Mapped[str | None] = mapped_column(String(36))
    entry: Mapped[bytes] = mapped_column(LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary)
    leaf_index: Mapped[int | None] = mapped_column(Integer)
    sequenced_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
