"""The platform's verification service: the gateway answers a verification request itself.

The last intake stage for ``GraduateVerificationRequest``. By the time it runs, the request was
authorised, its use counted and recorded (``gateway.grants.enforce``), stored and given its signed
receipt. This stage reads the graduate's filed registration (the source of truth), keeps only the
facts the request asked for (the enforcement refused anything beyond the grant, so these are the
facts both requested and granted), signs them as a ``ver:GraduateVerificationResponse`` and
answers ``ver:GraduateVerificationAnswer``: that response and the receipt, each signed by the
gateway.

The facts:

- ``identity_match``: the subject named (name plus transfer or verification number) is the
  graduate of the grant, and, when the request gives an identity number too, it is theirs;
- ``education``: school (credit code and name), level, major, graduation date;
- ``destination``: destination code and employer (credit code and name), if any;
- ``archive``: who holds the archive now (the university until a receiving unit returns a
  receipt) and how far its transfer has got: held, requested, dispatched, received, or overdue;
- ``employment_evidence``: the employer and the employment agreement's or labour contract's
  reference and signing date, as the registration states them (what settlement needs).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lxml import etree
from lxml.builder import ElementMaker
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.archives.models import ArchiveTransfer, TransferStatus
from gateway.errors import RegistrationNotFiled
from gateway.graduates.models import GraduateAccount
from gateway.grants.enforce import VerificationRequest
from gateway.grants.models import Grant, GrantUse
from gateway.grants.scope import SERVICE
from gateway.intake.pipeline import Inbound
from gateway.privacy import IdentityHasher
from gateway.registrations.models import Registration
from gateway.registrations.rules import filed_registration
from gateway.registry.models import Participant
from gateway.security.signer import GatewaySigner
from gateway.xmlparse import parse_untrusted

VER_NS = "urn:gradex:verification:1"
COMMON_NS = "urn:gradex:common:1"
_VER = ElementMaker(namespace=VER_NS, nsmap={"ver": VER_NS, "c": COMMON_NS})
_C = ElementMaker(namespace=COMMON_NS, nsmap={"c": COMMON_NS})
# The destination code says what the registration's contract reference is (schemas/codes/destination-codes.csv).
CONTRACT_KINDS = {"10": "employment_agreement", "11": "labour_contract"}


@dataclass(frozen=True)
class AnswerVerification:
    """The intake stage that answers ``GraduateVerificationRequest`` (other services pass through)."""

    signer: GatewaySigner
    hasher: IdentityHasher

    def __call__(self, inbound: Inbound, session: Session) -> None:
        if inbound.service is None or inbound.service.name != SERVICE:
            return
        assert inbound.parts is not None and inbound.stored is not None
        use = session.scalar(select(GrantUse).where(GrantUse.message_pk == inbound.stored.id))
        grant = session.get(Grant, use.grant_id) if use is not None and use.grant_id else None
        account = session.get(GraduateAccount, grant.account_id) if grant is not None else None
        if use is None or grant is None or account is None:
            raise RuntimeError("a verification request reached the answer without a recorded use of a grant")
        registration = filed_registration(session, account.identity_hash)
        if registration is None:  # the enforcement checked the subject against it in this transaction
            raise RegistrationNotFiled("the graduate has no filed destination registration to answer from")
        request = VerificationRequest.read(inbound.parts.document)
        facts = _Facts(session, registration, inbound.received_at)
        identity_match = (
            request.identity_number is None or self.hasher(request.identity_number) == account.identity_hash
        )
        response = _VER.GraduateVerificationResponse(
            _VER.RequestId(request.request_id),
            _VER.MessageId(inbound.stored.message_id),
            _VER.Requester(inbound.stored.sender_id),
            _VER.GrantId(grant.id),
            _subject(request),
            facts.element(frozenset(use.facts.split(",")), identity_match),
            _VER.AnsweredAt(_instant(inbound.received_at)),
            Id=f"verification-{inbound.stored.message_id}",
        )
        signed = self.signer.sign_enveloped(response)
        # The receipt is signed once the acceptance's place in the log is known (at the batch's end).
        inbound.answer_with_receipt = lambda receipt: answer_element(signed, receipt)


def answer_element(response: etree._Element, receipt: etree._Element) -> etree._Element:
    """``ver:GraduateVerificationAnswer`` holding both signed elements exactly as they were signed.

    Serialised and spliced, then parsed, rather than moved into a new tree: moving a signed element
    can make lxml rewrite prefixes inside it, which changes its canonical form.
    """
    inner = etree.tostring(response, encoding="UTF-8") + etree.tostring(receipt, encoding="UTF-8")
    wrapped = (
        f'<ver:GraduateVerificationAnswer xmlns:ver="{VER_NS}">'.encode() + inner + b"</ver:GraduateVerificationAnswer>"
    )
    return parse_untrusted(wrapped).getroot()


def _subject(request: VerificationRequest) -> etree._Element:
    subject: etree._Element = _VER.Subject(_VER.Name(request.subject.name))
    if request.subject.transfer_number is not None:
        subject.append(_VER.TransferNumber(request.subject.transfer_number))
    else:
        subject.append(_VER.VerificationNumber(request.subject.verification_number or ""))
    return subject


class _Facts:
    """The facts of one graduate's filed registration, as the answer states them."""

    def __init__(self, session: Session, registration: Registration, now: datetime) -> None:
        self._session = session
        self._registration = registration
        self._now = now

    def element(self, wanted: frozenset[str], identity_match: bool) -> etree._Element:
        facts: etree._Element = _VER.Facts()
        if "identity_match" in wanted:
            facts.append(_VER.IdentityMatch("true" if identity_match else "false"))
        if "education" in wanted:
            facts.append(self._education())
        if "destination" in wanted:
            facts.append(self._destination())
        if "archive" in wanted:
            facts.append(self._archive())
        if "employment_evidence" in wanted:
            facts.append(self._employment_evidence())
        return facts

    def _organisation(self, tag: str, participant_id: str, name: str | None = None) -> etree._Element:
        if name is None:
            participant = self._session.get(Participant, participant_id)
            name = participant.name if participant is not None else participant_id
        element: etree._Element = _VER(tag, _C.CreditCode(participant_id), _C.Name(name))
        return element

    def _education(self) -> etree._Element:
        r = self._registration
        element: etree._Element = _VER.Education(
            self._organisation("School", r.university_id),
            _VER.Level(r.education_level),
            _VER.Major(r.major),
            _VER.GraduationDate(r.graduation_date.isoformat()),
        )
        return element

    def _destination(self) -> etree._Element:
        r = self._registration
        element: etree._Element = _VER.Destination(_VER.DestinationCode(r.destination_code))
        if r.employer_id:
            element.append(self._organisation("Employer", r.employer_id, r.employer_name))
        return element

    def _employment_evidence(self) -> etree._Element:
        """Employer, contract kind, reference and date, as the filed registration states them."""
        r = self._registration
        element: etree._Element = _VER.EmploymentEvidence()
        if r.employer_id:
            element.append(self._organisation("Employer", r.employer_id, r.employer_name))
        if r.contract_reference:
            kind = CONTRACT_KINDS.get(r.destination_code[:2], "other")
            element.append(_VER.ContractKind(kind))
            element.append(_VER.ContractReference(r.contract_reference))
        if r.contract_date is not None:
            element.append(_VER.ContractDate(r.contract_date.isoformat()))
        return element

    def _archive(self) -> etree._Element:
        r = self._registration
        transfers = list(
            self._session.scalars(
                select(ArchiveTransfer)
                .where(ArchiveTransfer.identity_hash == r.identity_hash)
                .order_by(ArchiveTransfer.id.desc())
            )
        )
        received = [t for t in transfers if t.status == TransferStatus.RECEIVED and t.received_at is not None]
        holder = max(received, key=lambda t: (t.received_at, t.id)).receiver_id if received else r.university_id
        element: etree._Element = _VER.Archive(
            self._organisation("Holder", holder), _VER.TransferStatus(self._transfer_status(transfers))
        )
        return element

    def _transfer_status(self, transfers: list[ArchiveTransfer]) -> str:
        if not transfers:
            return "held"
        latest = transfers[0]
        due = {TransferStatus.REQUESTED: latest.dispatch_due_at, TransferStatus.DISPATCHED: latest.receipt_due_at}
        deadline = due.get(latest.status)
        if deadline is not None and deadline < self._now:
            return "overdue"
        return latest.status


def _instant(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
