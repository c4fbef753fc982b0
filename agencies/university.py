"""A university's employment office: registrations, agreement reviews, and its graduates' archives.

- It registers each graduate's destination with the education department of its province and
  keeps the transfer and verification numbers of the filing; a registration sent back is corrected
  and sent again under the same registration id.
- An employer's ``AgreementOffer`` is answered by the graduate. A graduate who answers in the
  graduate portal does so there: the gateway (the platform participant) sends the office an
  ``AgreementResponse``, which names the agreement but no identity number, and the office reviews
  an acceptance (``AgreementReview``). An offer made before the graduate's registration is filed
  cannot be answered in the portal yet (the account is activated with the filed registration):
  that graduate tells the office, which relays the answer itself and then reviews it.
- A graduate registered as awaiting employment who then signs an agreement gets a corrected
  registration (same registration id), which the department files again with new numbers.
- It reviews a cancellation an employer asks for (``AgreementCancellationReview``).
- It holds the archives: it answers an ``ArchiveTransferRequest`` with an ``ArchiveTransferManifest``
  to the requesting unit, dispatches others on its own, and records the receiving unit's receipt.
  Confidential documents go by confidential post (机要) or special personnel.
- It can itself receive an archive (a graduate admitted for further study from elsewhere).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from agencies.base import Received
from agencies.documents import NS, china_time, render, text
from agencies.receiving import ArchiveReceivingUnit
from agencies.records import (
    ARCHIVE_HELD,
    CONTRACT_REFERENCE_OMITTED,
    GRADUATE_CARRIES,
    IDENTITY_TYPO,
    IN_THE_PORTAL,
    ORDINARY_POST,
    TRANSCRIPT_FORGOTTEN,
    UNIT_NATURE_TYPO,
    ArchiveDocument,
    Graduate,
    Offer,
    Organisation,
)
from gateway.sdk.client import GatewayRefusal

log = logging.getLogger(__name__)
WAYBILL_PREFIX = {"confidential_communication": "JY", "special_personnel": "ZR", "ordinary_post": "PY"}
OTHER_ENTERPRISE = "39"  # the unit nature a clerk types for an employer by mistake (unit-nature-typo)


@dataclass
class StudentFile:
    """Where one graduate's paperwork stands, as the university sees it."""

    graduate: Graduate
    registration: str = "not sent"  # sent | rejected | filed
    registered_as: Graduate | None = None  # what the registration last sent says (destination, employer ...)
    rejections: int = 0
    transfer_number: str | None = None
    verification_number: str | None = None
    request_id: str | None = None  # the transfer request received
    held: bool = False  # the request was received and not acted on
    manifest_id: str | None = None
    receipt: dict[str, str] = field(default_factory=dict)  # document id -> status
    agreements: dict[str, str] = field(default_factory=dict)  # agreement id -> the office's last step


class University(ArchiveReceivingUnit):
    def __init__(self, profile: Organisation, delivery: str, education_department: str, workers: int = 2) -> None:
        super().__init__(profile, delivery, workers)
        self.education_department = education_department
        self.files: dict[str, StudentFile] = {}  # identity number -> file
        self.handlers.update(
            {
                "RegistrationFiled": self._on_filed,
                "RegistrationRejected": self._on_rejected,
                "AgreementOffer": self._on_offer,
                "AgreementResponse": self._on_portal_answer,
                "AgreementCancellation": self._on_cancellation,
                "ArchiveTransferRequest": self._on_transfer_request,
                "ArchiveReceipt": self._on_receipt,
            }
        )

    def enrol(self, graduates: list[Graduate]) -> None:
        """The students whose files this office keeps (its own records)."""
        with self._lock:
            for graduate in graduates:
                self.files[graduate.identity_number] = StudentFile(graduate)

    def file(self, identity_number: str) -> StudentFile:
        with self._lock:
            return self.files[identity_number]

    # --- destination registration --------------------------------------------------------------

    def register(self, graduate: Graduate) -> None:
        """Register the graduate's destination as it stands (``registered_first_as``, if the job came
        later); a typo the gateway refuses is corrected from the file."""
        registered = graduate.registered_first_as or graduate
        typo = IDENTITY_TYPO in graduate.mishaps
        nature_typo = UNIT_NATURE_TYPO in graduate.mishaps and registered.employer is not None
        try:
            self._send_registration(
                registered,
                _with_typo(graduate.identity_number) if typo else None,
                OTHER_ENTERPRISE if nature_typo else None,
            )
        except GatewayRefusal as refusal:
            if not (typo and refusal.code == "CODE_INVALID") and not (
                nature_typo and refusal.code == "EMPLOYER_UNIT_NATURE_MISMATCH"
            ):
                raise
            # The fault names the element (never the number), or the registry's unit nature: the
            # clerk retypes it from the file.
            self._send_registration(registered, None)

    def correct_registration(self, graduate: Graduate) -> None:
        """Send the registration again, as the graduate's destination now is (same registration id)."""
        self._send_registration(graduate, None)

    def _send_registration(
        self, graduate: Graduate, typed_identity: str | None, typed_unit_nature: str | None = None
    ) -> None:
        file = self.file(graduate.identity_number)
        omitted = CONTRACT_REFERENCE_OMITTED in graduate.mishaps and file.rejections == 0
        document = render(
            "destination-registration",
            g=graduate,
            identity_number=typed_identity or graduate.identity_number,
            unit_nature=typed_unit_nature,  # None: the employer's own
            contract_reference=None if omitted else graduate.contract_reference,
            at=china_time(),
        )
        with self._lock:  # before sending: the department's answer may arrive before send() returns
            file.registration = "sent"
            file.registered_as = graduate
        self.send(document, self.education_department, "DestinationRegistration", graduate.registration_id)

    def _on_filed(self, received: Received) -> None:
        file = self.file(text(received.document, "reg:IdentityNumber"))
        with self._lock:
            file.transfer_number = text(received.document, "reg:TransferNumber")
            file.verification_number = text(received.document, "reg:VerificationNumber")
            file.registration = "filed"

    def _on_rejected(self, received: Received) -> None:
        file = self.file(text(received.document, "reg:IdentityNumber"))
        with self._lock:
            file.registration = "rejected"
            file.rejections += 1
        if file.rejections > 1:
            log.warning("%s: %s sent back again; left for a person", self.id, file.graduate.registration_id)
            return
        # The reasons say what is missing; the office completes the registration from the file.
        self._send_registration(file.registered_as or file.graduate, None)

    # --- online signing ------------------------------------------------------------------------

    def _on_offer(self, received: Received) -> None:
        doc = received.document
        file = self.file(text(doc, "agr:Graduate/agr:IdentityNumber"))
        agreement_id = text(doc, "agr:AgreementId")
        offer = _offer(file.graduate, agreement_id, received.sender)
        if offer.answered_in == IN_THE_PORTAL:
            with self._lock:  # the answer may already have come (deliveries arrive in any order)
                file.agreements.setdefault(agreement_id, "offered")
            return  # the graduate answers in the portal; the platform's AgreementResponse follows
        # Offered before the registration was filed: the graduate tells the office, which relays the answer.
        response = render(
            "agreement-response",
            agreement_id=agreement_id,
            identity_number=file.graduate.identity_number,
            decision=offer.decision,
            at=china_time(),
        )
        self.send(response, received.sender, "AgreementResponse", agreement_id)
        with self._lock:
            file.agreements[agreement_id] = offer.decision
        if offer.decision == "accept":
            self._review(file, agreement_id, received.sender)

    def _on_portal_answer(self, received: Received) -> None:
        """The graduate answered in the portal; the gateway sent the answer on (no identity number in it)."""
        doc = received.document
        agreement_id = text(doc, "agr:AgreementId")
        employer = text(doc, "agr:Employer")
        file = self._file_with_offer(agreement_id, employer)
        decision = text(doc, "agr:Decision")
        with self._lock:
            file.agreements[agreement_id] = decision
        if decision == "accept":
            self._review(file, agreement_id, employer)

    def _review(self, file: StudentFile, agreement_id: str, employer: str) -> None:
        """Approve an accepted agreement; a graduate registered before the job came gets the registration corrected."""
        review = render("agreement-review", agreement_id=agreement_id, decision="approve", reason=None, at=china_time())
        self.send(review, employer, "AgreementReview", agreement_id)
        with self._lock:
            file.agreements[agreement_id] = "approved"
            registered = file.registered_as
        graduate = file.graduate
        if registered is not None and registered.destination_code != graduate.destination_code:
            self.correct_registration(graduate)

    def _file_with_offer(self, agreement_id: str, employer: str) -> StudentFile:
        with self._lock:
            files = list(self.files.values())
        for file in files:
            if any(o.agreement_id == agreement_id and o.employer.credit_code == employer for o in file.graduate.offers):
                return file
        raise LookupError(f"no graduate of this office expects agreement {agreement_id} from {employer}")

    def _on_cancellation(self, received: Received) -> None:
        agreement_id = text(received.document, "agr:AgreementId")
        review = render(
            "agreement-cancellation-review",
            agreement_id=agreement_id,
            decision="approve",
            reason="双方协商一致，同意解约。",
            at=china_time(),
        )
        self.send(review, received.sender, "AgreementCancellationReview", agreement_id)

    # --- archives --------------------------------------------------------------------------------

    def _on_transfer_request(self, received: Received) -> None:
        doc = received.document
        file = self.file(text(doc, "arc:Graduate/arc:IdentityNumber"))
        request_id = text(doc, "arc:RequestId")
        with self._lock:
            file.request_id = request_id
            file.held = ARCHIVE_HELD in file.graduate.mishaps
        if file.held:
            log.info("%s: transfer request %s is left lying in the archive office", self.id, request_id)
            return
        self.dispatch_archive(file.graduate, request_id)

    def dispatch_archive(self, graduate: Graduate, request_id: str | None = None) -> str:
        """Send the archive to its receiving unit with a manifest; returns the manifest id."""
        file = self.file(graduate.identity_number)
        if file.transfer_number is None:
            raise RuntimeError(f"the registration of {graduate.registration_id} is not filed; the archive stays")
        manifest_id = f"ATM-{graduate.graduation_date.year}-{graduate.index:06d}"
        method = graduate.dispatch_method
        if ORDINARY_POST in graduate.mishaps:
            method = "ordinary_post"
        elif GRADUATE_CARRIES in graduate.mishaps:
            method = "carried_by_graduate"
        documents = graduate.documents
        if TRANSCRIPT_FORGOTTEN in graduate.mishaps:
            documents = tuple(d for d in documents if d.type != "transcript")
        try:
            self._send_manifest(graduate, file.transfer_number, manifest_id, request_id, method, documents)
        except GatewayRefusal as refusal:
            slip = method != graduate.dispatch_method and refusal.code == "ARCHIVE_RULE_VIOLATION"
            if not slip and not (documents != graduate.documents and refusal.code == "ARCHIVE_INCOMPLETE"):
                raise
            # The fault names the dispatch-method rule (the parcel goes by confidential post or special
            # personnel) or the missing document (the clerk puts the transcript in).
            self._send_manifest(
                graduate, file.transfer_number, manifest_id, request_id, graduate.dispatch_method, graduate.documents
            )
        with self._lock:
            file.manifest_id = manifest_id
        return manifest_id

    def _send_manifest(
        self,
        graduate: Graduate,
        transfer_number: str,
        manifest_id: str,
        request_id: str | None,
        method: str,
        documents: tuple[ArchiveDocument, ...],
    ) -> None:
        document = render(
            "archive-transfer-manifest",
            g=graduate,
            documents=documents,
            manifest_id=manifest_id,
            request_id=request_id,
            transfer_number=transfer_number,
            method=method,
            waybill=f"{WAYBILL_PREFIX.get(method, 'XX')}-{self.profile.region[:4]}-{graduate.index:08d}",
            at=china_time(),
        )
        self.send(document, graduate.archive_receiver.credit_code, "ArchiveTransferManifest", manifest_id)

    def _on_receipt(self, received: Received) -> None:
        doc = received.document
        file = self.file(text(doc, "arc:IdentityNumber"))
        statuses = {
            text(row, "arc:DocumentId"): text(row, "arc:Status") for row in doc.iterfind("arc:DocumentReceipt", NS)
        }
        with self._lock:
            file.receipt = statuses


def _offer(graduate: Graduate, agreement_id: str, employer: str) -> Offer:
    for offer in graduate.offers:
        if offer.agreement_id == agreement_id and offer.employer.credit_code == employer:
            return offer
    raise LookupError(f"the graduate of {graduate.registration_id} expects no offer {agreement_id} from {employer}")


def _with_typo(identity_number: str) -> str:
    """The number with its check character mistyped (a wrong check character is never valid)."""
    wrong = "0" if identity_number[-1] != "0" else "1"
    return identity_number[:-1] + wrong
