"""Per-participant grants and denials on top of the access-rights matrix (``schemas/access-rights.csv``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.base import Base, UtcDateTime


class AccessOverride(Base):
    """``effect`` (grant or deny) for ``participant_id`` sending ``service`` to ``counterpart_id`` (any if null)."""

    __tablename__ = "access_overrides"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    participant_id: Mapped[str] = mapped_column(ForeignKey("participants.id"), index=True)
    service: Mapped[str] = mapped_column(String(64))
    counterpart_id: Mapped[str | None] = mapped_column(ForeignKey("participants.id"))
    effect: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


# An override's columns in the order of :class:`gateway.access.rules.Override`'s fields (read as
# columns, not entities: nothing to put in an identity map).
OVERRIDE_COLUMNS = (
    AccessOverride.id,
    AccessOverride.participant_id,
    AccessOverride.service,
    AccessOverride.counterpart_id,
    AccessOverride.effect,
    AccessOverride.reason,
)
