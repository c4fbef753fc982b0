"""A public employment and talent service agency: receives and holds graduates' archives.

It holds the archives of graduates employed by non-public units, self-employed or not yet employed,
for the regions it serves. When a graduate registers with it, it asks the graduate's university for
the archive (``ArchiveTransferRequest``, which starts the university's 15-day clock) and receipts
the archive when the parcel arrives (:class:`~agencies.receiving.ArchiveReceivingUnit`). With the
graduate's authorisation it checks through the verification service where the archive stands
(:class:`~agencies.verification.Verifying`), before it opens the graduate's file.
"""

from __future__ import annotations

from agencies.receiving import ArchiveReceivingUnit
from agencies.verification import Verifying
from gateway.sdk.verification import VerifiedVerification


class TalentServiceAgency(ArchiveReceivingUnit, Verifying):
    """Receives archives and verifies, for the graduates who register with it, that theirs is here."""

    def decide(self, answer: VerifiedVerification) -> str:
        if not answer.identity_match or answer.archive is None:
            return "file not opened: the verified facts do not support it"
        if answer.archive.holder.credit_code == self.id:
            return "file opened: the archive is held here"
        return f"file opened: the archive is {answer.archive.transfer_status}, held by {answer.archive.holder.name}"
