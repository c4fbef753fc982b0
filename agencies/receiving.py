"""A unit that receives personnel archives: asks the holder for one, and receipts what arrives.

Talent service agencies, employers that keep archives (state organs, public institutions,
state-owned enterprises), targeted units and admitting universities all do this. The electronic
manifest arrives through the gateway first; the paper archive follows by confidential post (机要) or
special personnel. Only once the parcel is there does the unit check each document and return an
``ArchiveReceipt`` (received, missing or damaged, per document) to whoever dispatched it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from agencies.base import Agency, Received
from agencies.documents import china_time, render, text, texts
from agencies.records import Graduate, Organisation


@dataclass
class Parcel:
    """An archive announced by a manifest, waiting to be receipted."""

    manifest_id: str
    holder: str
    identity_number: str
    document_ids: list[str]
    method: str
    receipted: dict[str, str] = field(default_factory=dict)  # document id -> status, once receipted


class ArchiveReceivingUnit(Agency):
    def __init__(self, profile: Organisation, delivery: str, workers: int = 1) -> None:
        super().__init__(profile, delivery, workers)
        self.parcels: dict[str, Parcel] = {}  # manifest id -> parcel
        self.requested: dict[str, str] = {}  # identity number -> request id
        self._requests = 0
        self.handlers["ArchiveTransferManifest"] = self._on_manifest

    def request_archive(self, graduate: Graduate, transfer_number: str) -> str:
        """Ask the graduate's university for the archive (the graduate brought the transfer number)."""
        with self._lock:
            self._requests += 1
            request_id = f"ATR-{self.id[-6:]}-{self._requests:06d}"
            self.requested[graduate.identity_number] = request_id
        document = render(
            "archive-transfer-request",
            request_id=request_id,
            identity_number=graduate.identity_number,
            name=graduate.name,
            transfer_number=transfer_number,
            receiver=self.profile,
            at=china_time(),
        )
        self.send(document, graduate.school.credit_code, "ArchiveTransferRequest", correlation_id=request_id)
        return request_id

    def _on_manifest(self, received: Received) -> None:
        doc = received.document
        parcel = Parcel(
            manifest_id=text(doc, "arc:ManifestId"),
            holder=received.sender,
            identity_number=text(doc, "arc:IdentityNumber"),
            document_ids=texts(doc, "arc:Documents/arc:Document/arc:DocumentId"),
            method=text(doc, "arc:Dispatch/arc:Method"),
        )
        with self._lock:
            self.parcels[parcel.manifest_id] = parcel

    def parcel_for(self, identity_number: str) -> Parcel | None:
        with self._lock:
            return next((p for p in self.parcels.values() if p.identity_number == identity_number), None)

    def confirm_arrival(self, manifest_id: str, damaged: Collection[str] = ()) -> None:
        """The paper archive is here: check it against the manifest and send the receipt."""
        with self._lock:
            parcel = self.parcels[manifest_id]
        statuses = {d: ("damaged" if d in damaged else "received") for d in parcel.document_ids}
        rows = [(d, s, "材料受潮，字迹可辨认。" if s == "damaged" else None) for d, s in statuses.items()]
        document = render(
            "archive-receipt",
            manifest_id=manifest_id,
            identity_number=parcel.identity_number,
            documents=rows,
            at=china_time(),
        )
        self.send(document, parcel.holder, "ArchiveReceipt", correlation_id=manifest_id)
        with self._lock:
            parcel.receipted = statuses
