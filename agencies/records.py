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
# the registration gives the employer another unit nature than the registry's: EMPLOYER_UNIT_NATURE_MISMATCH
UNIT_NATURE_TYPO = "unit-nature-typo"
TRANSCRIPT_FORGOTTEN = "transcript-forgotten"  # the manifest leaves the transcript out: ARCHIVE_INCOMPLETE
GRADUATE_CARRIES = "graduate-carries"  # the graduate offers to carry the archive: ARCHIVE_RULE_VIOLATION
MISHAPS = frozenset(
    {
        IDENTITY_TYPO,
        CONTRACT_REFERENCE_OMITTED,
        ORDINARY_POST,
        ARCHIVE_HELD,
        PARCEL_LOST,
        DOCUMENT_DAMAGED,
        UNIT_NATURE_TYPO,
        TRANSCRIPT_FORGOTTEN,
        GRADUATE_CARRIES,
    }
)

# How a graduate answers an agreement offer: tells the university's employment office, which relays
# the answer (an offer made before the registration is filed: the portal account needs the filed
# registration), or in the graduate portal, from which the gateway sends the answer on.
TOLD_THE_OFFICE = "office"
IN_THE_PORTAL = "portal"

# How a graduate uses the portal in the demo: its pages over HTTP, as a browser does, or the
# gateway's own services in the demo's process (``gateway.demo.portal`` says why both).
PORTAL_PAGES = "pages"
PORTAL_SERVICES = "services"

# How the verifier is handed the authorisation: the token (copied, or scanned from the QR code), or
# the short code read out at a counter.
TOKEN = "token"  # noqa: S105  (a way of handing over, not a secret)
SHORT_CODE = "short-code"

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
    decision: str  # accept | refuse: the graduate's answer; open: not answered (the demo leaves one for its visitor)
    expired_first: bool = False  # the employer first sends it with validity dates already past
    cancelled: bool = False  # signed, then cancelled at the employer's request
    answered_in: str = TOLD_THE_OFFICE  # TOLD_THE_OFFICE | IN_THE_PORTAL


@dataclass(frozen=True)
class Authorisation:
    """What a graduate grants one verifier in the portal, and what then happens to the grant.

    The verifier asks for ``facts`` for ``purpose``, handed the token or the short code; a clerk
    who first asks for more than was granted (``asks_beyond``) is refused and asks again for the
    granted facts; a verifier that checks twice (``used_twice``) finds a one-use grant used up;
    a graduate who ``revokes`` it after the first use makes the next request fail.
    """

    verifier: Organisation
    facts: tuple[str, ...]
    purpose: str
    purpose_text: str
    hand_over: str = TOKEN  # TOKEN | SHORT_CODE
    max_uses: int = 1
    valid_days: int = 7
    asks_beyond: str | None = None  # a fact the verifier also asks for at first
    used_twice: bool = False
    revokes: bool = False


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
    portal: str | None = None  # PORTAL_PAGES | PORTAL_SERVICES: the graduate activates a portal account
    authorisation: Authorisation | None = None  # the grant the graduate gives a verifier
    # What the university first registered, when the graduate found the job of ``offers`` only after
    # that registration was filed (awaiting employment): the office corrects it once the agreement is signed.
    registered_first_as: Graduate | None = None

    @property
    def registration_id(self) -> str:
        return f"REG-{self.graduation_date.year}-{self.index:06d}"

    @property
    def confidential_documents(self) -> int:
        return sum(1 for d in self.documents if d.confidential)
