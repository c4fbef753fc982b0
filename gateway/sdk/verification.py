"""Reading the gateway's answer to a graduate verification request, on the verifier's side.

The answer (``ver:GraduateVerificationAnswer``) holds two elements, each signed by the gateway: the
``ver:GraduateVerificationResponse`` with the facts, and the ``gw:Receipt`` of the request. Both
are verified (:func:`gateway.sdk.receipts.verify_gateway_signed`), the receipt against the digests
of what was sent, and the response must answer this very request (its MessageId) for this
requester. Facts are read from the verified copy only.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from lxml import etree

from gateway.sdk.receipts import ReceiptInvalid, VerifiedReceipt, verify_gateway_signed, verify_receipt

VER_NS = "urn:gradex:verification:1"
GATEWAY_NS = "urn:gradex:gateway:1"
ANSWER = f"{{{VER_NS}}}GraduateVerificationAnswer"
RESPONSE = f"{{{VER_NS}}}GraduateVerificationResponse"
NS = {"ver": VER_NS, "c": "urn:gradex:common:1", "gw": GATEWAY_NS}


@dataclass(frozen=True)
class Organisation:
    credit_code: str
    name: str


@dataclass(frozen=True)
class Education:
    school: Organisation
    level: str
    major: str
    graduation_date: date


@dataclass(frozen=True)
class Destination:
    code: str
    employer: Organisation | None


@dataclass(frozen=True)
class Archive:
    holder: Organisation
    transfer_status: str  # held | requested | dispatched | received | overdue


@dataclass(frozen=True)
class EmploymentEvidence:
    """What a graduate settles with: the employer and the agreement's or labour contract's reference and date."""

    employer: Organisation | None
    contract_kind: str | None  # employment_agreement | labour_contract | other
    contract_reference: str | None
    contract_date: date | None


@dataclass(frozen=True)
class VerifiedVerification:
    """The facts of a gateway-signed verification response; a fact not granted (or not asked) is None."""

    request_id: str
    message_id: str
    requester: str
    grant_id: str
    subject_name: str
    identity_match: bool | None
    education: Education | None
    destination: Destination | None
    archive: Archive | None
    answered_at: datetime
    xml: bytes  # the signed response, as received
    employment_evidence: EmploymentEvidence | None = None


def read_answer(
    answer: etree._Element,
    anchor_files: Sequence[Path],
    message_id: str,
    requester: str,
    sent_digests: dict[str, str] | None = None,
    now: datetime | None = None,
) -> tuple[VerifiedReceipt, VerifiedVerification]:
    """Verify both signed parts of ``answer``; raises :class:`ReceiptInvalid` when either does not hold."""
    response = answer.find("ver:GraduateVerificationResponse", NS)
    receipt = answer.find("gw:Receipt", NS)
    if response is None or receipt is None:
        raise ReceiptInvalid("the verification answer lacks the response or the receipt")
    # Each on its own copy: a signature is checked within the element it signs.
    verified_receipt = verify_receipt(copy.deepcopy(receipt), anchor_files, sent_digests, now)
    signed = verify_gateway_signed(copy.deepcopy(response), RESPONSE, anchor_files, now)
    facts = read_response(signed, etree.tostring(response))
    if facts.message_id != message_id or verified_receipt.message_id != message_id:
        raise ReceiptInvalid(f"the answer is for message {facts.message_id}, not {message_id}")
    if facts.requester != requester:
        raise ReceiptInvalid(f"the answer is for requester {facts.requester}, not {requester}")
    return verified_receipt, facts


def read_response(signed: etree._Element, xml: bytes) -> VerifiedVerification:
    """The facts of a (verified) ``ver:GraduateVerificationResponse``."""
    match = signed.findtext("ver:Facts/ver:IdentityMatch", namespaces=NS)
    education = signed.find("ver:Facts/ver:Education", NS)
    destination = signed.find("ver:Facts/ver:Destination", NS)
    archive = signed.find("ver:Facts/ver:Archive", NS)
    employer = destination.find("ver:Employer", NS) if destination is not None else None
    return VerifiedVerification(
        request_id=_text(signed, "ver:RequestId"),
        message_id=_text(signed, "ver:MessageId"),
        requester=_text(signed, "ver:Requester"),
        grant_id=_text(signed, "ver:GrantId"),
        subject_name=_text(signed, "ver:Subject/ver:Name"),
        identity_match=None if match is None else match.strip() in ("true", "1"),
        education=None
        if education is None
        else Education(
            school=_organisation(education, "ver:School"),
            level=_text(education, "ver:Level"),
            major=_text(education, "ver:Major"),
            graduation_date=date.fromisoformat(_text(education, "ver:GraduationDate")),
        ),
        destination=None
        if destination is None
        else Destination(
            code=_text(destination, "ver:DestinationCode"),
            employer=None if employer is None else _organisation(destination, "ver:Employer"),
        ),
        archive=None
        if archive is None
        else Archive(holder=_organisation(archive, "ver:Holder"), transfer_status=_text(archive, "ver:TransferStatus")),
        answered_at=datetime.fromisoformat(_text(signed, "ver:AnsweredAt").replace("Z", "+00:00")),
        xml=xml,
        employment_evidence=_employment_evidence(signed.find("ver:Facts/ver:EmploymentEvidence", NS)),
    )


def _employment_evidence(evidence: etree._Element | None) -> EmploymentEvidence | None:
    if evidence is None:
        return None
    signed_on = _text(evidence, "ver:ContractDate")
    return EmploymentEvidence(
        employer=_organisation(evidence, "ver:Employer") if evidence.find("ver:Employer", NS) is not None else None,
        contract_kind=_text(evidence, "ver:ContractKind") or None,
        contract_reference=_text(evidence, "ver:ContractReference") or None,
        contract_date=date.fromisoformat(signed_on) if signed_on else None,
    )


def _organisation(parent: etree._Element, path: str) -> Organisation:
    return Organisation(_text(parent, f"{path}/c:CreditCode"), _text(parent, f"{path}/c:Name"))


def _text(element: etree._Element, path: str) -> str:
    return (element.findtext(path, namespaces=NS) or "").strip()
