"""What the agency systems know about graduates and organisations: plain records, no behaviour.

In the demonstration season (``gateway demo``) these records are the agencies' own databases:
the university's student files, an employer's candidates. A graduate's ``mishaps`` script the
human slips a season brings (a typo, a forgotten field, the wrong post); the agency systems meet
the gateway's fault or the department's rejection and correct them as a clerk would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

# Mishaps: each makes one specific thing go wrong for one graduate, on purpose.
IDENTITY_TYPO = "identity-typo"  # the registration's identity number has a wrong check character: CODE_INVALID
CONTRACT_REFERENCE_OMITTED = "contract-reference-omitted"  # the department sends the registration back
ORDINARY_POST = "ordinary-post"  # confidential documents by ordinary post: ARCHIVE_RULE_VIOLATION
ARCHIVE_HELD = "archive-held"  # the university never acts on the transfer request: dispatch overdue
PARCEL_LOST = "parcel-lost"  # the archive never arrives, so no receipt: receipt overdue
DOCUMENT_DAMAGED = "document-damaged"  # one document arrives damaged (noted in the receipt)
MISHAPS = frozenset(
    {IDENTITY_TYPO, CONTRACT_REFERENCE_OMITTED, ORDINARY_POST, ARCHIVE_HELD, PARCEL_LOST, DOCUMENT_DAMAGED}
)

# Who starts an archive's transfer: the receiving unit asks (ArchiveTransferRequest), or the
# university dispatches on its own (a manifest without a request).
RECEIVER_REQUESTS = "receiver-requests"
UNIVERSITY_DISPATCHES = "university-dispatches"


@dataclass(frozen=True)
class Organisation:
    credit_code: str
    name: str
    kind: str
    region: str
    unit_nature: str | None = None


@dataclass(frozen=True)
class ArchiveDocument:
    document_id: str
    type: str
    title: str
    pages: int
    confidential: bool
    scan_sha256: str


@dataclass(frozen=True)
class Offer:
    """An employment agreement an employer offers a graduate, and what becomes of it."""

    agreement_id: str
    employer: Organisation
    position: str
    salary: str
    decision: str  # accept | refuse: the graduate's answer
    expired_first: bool = False  # the employer first sends it with validity dates already past
    cancelled: bool = False  # signed, then cancelled at the employer's request


@dataclass(frozen=True)
class Graduate:
    index: int
    identity_number: str
    name: str
    school: Organisation
    student_number: str
    education_level: str
    major: str
    major_code: str
    graduation_date: date
    leaves_late: bool
    household_region: str
    destination_code: str
    archive_receiver_choice: str
    archive_receiver: Organisation
    archive_initiative: str  # RECEIVER_REQUESTS | UNIVERSITY_DISPATCHES
    dispatch_method: str  # how the university means to send the archive
    documents: tuple[ArchiveDocument, ...]
    employer: Organisation | None = None
    contract_reference: str | None = None
    targeted_unit: Organisation | None = None
    admitting_institution: Organisation | None = None
    offers: tuple[Offer, ...] = ()
    mishaps: frozenset[str] = field(default_factory=frozenset)

    @property
    def registration_id(self) -> str:
        return f"REG-{self.graduation_date.year}-{self.index:06d}"

    @property
    def confidential_documents(self) -> int:
        return sum(1 for d in self.documents if d.confidential)
