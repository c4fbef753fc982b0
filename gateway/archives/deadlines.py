"""The archive transfer clock, as pure functions: when things are due, and what is overdue.

A transfer request gives the holder ``dispatch_days`` (15) to dispatch; a dispatched archive is
due to be receipted within ``receipt_days`` (30). Graduates leaving school late get
``late_leaver_extra_days`` (30) more on each limit. The clocks run on the gateway's own times of
receipt of the request and the manifest, which it can vouch for, not on the times the documents
declare.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.archives.models import ArchiveTransfer, TransferStatus
from gateway.settings import Settings

DISPATCH_OVERDUE = "dispatch overdue"
RECEIPT_OVERDUE = "receipt overdue"
_DAY = timedelta(days=1)


@dataclass(frozen=True)
class Limits:
    dispatch_days: int = 15
    receipt_days: int = 30
    late_leaver_extra_days: int = 30

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(settings.archive_dispatch_days, settings.archive_receipt_days, settings.late_leaver_extra_days)

    def dispatch_due(self, requested_at: datetime, leaves_late: bool) -> datetime:
        """When the holder must have dispatched an archive requested at ``requested_at``."""
        return requested_at + timedelta(days=self.dispatch_days + self._extra(leaves_late))

    def receipt_due(self, dispatched_at: datetime, leaves_late: bool) -> datetime:
        """When the receiver must have returned a receipt for an archive dispatched at ``dispatched_at``."""
        return dispatched_at + timedelta(days=self.receipt_days + self._extra(leaves_late))

    def _extra(self, leaves_late: bool) -> int:
        return self.late_leaver_extra_days if leaves_late else 0


@dataclass(frozen=True)
class Overdue:
    """One late transfer: what is late, since when, and by how many days (a part of a day counts)."""

    transfer_id: int
    transfer_number: str
    holder_id: str
    receiver_id: str
    what: str  # DISPATCH_OVERDUE or RECEIPT_OVERDUE
    due_at: datetime
    days: int


def overdue(transfers: Iterable[ArchiveTransfer], at: datetime) -> list[Overdue]:
    """The transfers late at ``at``, most overdue first.

    Requested and not dispatched after ``dispatch_due_at``: dispatch overdue. Dispatched and not
    receipted after ``receipt_due_at``: receipt overdue. Received transfers are never overdue.
    """
    found: list[Overdue] = []
    for transfer in transfers:
        if transfer.status == TransferStatus.REQUESTED:
            what, due = DISPATCH_OVERDUE, transfer.dispatch_due_at
        elif transfer.status == TransferStatus.DISPATCHED:
            what, due = RECEIPT_OVERDUE, transfer.receipt_due_at
        else:
            continue
        if due is None or at <= due:
            continue
        found.append(
            Overdue(
                transfer_id=transfer.id,
                transfer_number=transfer.transfer_number,
                holder_id=transfer.holder_id,
                receiver_id=transfer.receiver_id,
                what=what,
                due_at=due,
                days=days_late(due, at),
            )
        )
    return sorted(found, key=lambda o: (-o.days, o.due_at, o.transfer_id))


def days_late(due: datetime, at: datetime) -> int:
    """Whole days from ``due`` to ``at``, a started day counting as one (0 when not late)."""
    if at <= due:
        return 0
    late = at - due
    return late.days + (1 if late % _DAY else 0)
