"""Which archive transfers are overdue now: the query behind ``gateway archives overdue`` and the auditor UI.

The judgement itself is :func:`gateway.archives.deadlines.overdue` (pure); this only picks the
candidates from the store. Transfers carry the graduate's keyed hash, never the identity number,
and :class:`~gateway.archives.deadlines.Overdue` carries not even that.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from gateway.archives.deadlines import Overdue, overdue
from gateway.archives.models import ArchiveTransfer, TransferStatus


def overdue_transfers(session: Session, at: datetime) -> list[Overdue]:
    """The transfers late at ``at``, most overdue first."""
    candidates = session.scalars(
        select(ArchiveTransfer).where(
            or_(
                and_(ArchiveTransfer.status == TransferStatus.REQUESTED, ArchiveTransfer.dispatch_due_at < at),
                and_(ArchiveTransfer.status == TransferStatus.DISPATCHED, ArchiveTransfer.receipt_due_at < at),
            )
        )
    )
    return overdue(candidates, at)
