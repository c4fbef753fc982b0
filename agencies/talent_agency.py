"""A public employment and talent service agency: receives and holds graduates' archives.

It holds the archives of graduates employed by non-public units, self-employed or not yet employed,
for the regions it serves. When a graduate registers with it, it asks the graduate's university for
the archive (``ArchiveTransferRequest``, which starts the university's 15-day clock) and receipts
the archive when the parcel arrives (:class:`~agencies.receiving.ArchiveReceivingUnit`).
"""

from __future__ import annotations

from agencies.receiving import ArchiveReceivingUnit


class TalentServiceAgency(ArchiveReceivingUnit):
    """Everything it does today is receiving archives; its public directory entry is the gateway's."""
