"""A provincial education department: checks and files the destination registrations it receives.

For each ``DestinationRegistration`` it checks what a person at the department would (a destination
under an agreement or contract names it; an employed destination names the employer) and answers
the university: ``RegistrationFiled`` with a new transfer number (转递编号) and verification number
(核验编号), or ``RegistrationRejected`` with reasons. A corrected registration (same id) is checked
and filed again.

The verification service itself (answering a hukou office's ``GraduateVerificationRequest`` with the
facts the graduate granted) is the gateway's, with issue 6, not the department system's.
"""

from __future__ import annotations

import secrets
import string
from datetime import UTC, datetime

from lxml import etree

from agencies.base import Agency, Received
from agencies.documents import NS, china_time, render, text
from agencies.records import Organisation

NEEDS_CONTRACT = {"10", "11"}  # employment agreement, labour contract
NEEDS_EMPLOYER = {"10", "11", "12"}
_ALPHABET = string.digits + string.ascii_uppercase


class EducationDepartment(Agency):
    def __init__(self, profile: Organisation, delivery: str, workers: int = 1) -> None:
        super().__init__(profile, delivery, workers)
        self.filed: dict[tuple[str, str], str] = {}  # (university, registration id) -> transfer number
        self.rejected: dict[tuple[str, str], int] = {}  # (university, registration id) -> times sent back
        self._issued = 0
        self.handlers["DestinationRegistration"] = self._on_registration

    def _on_registration(self, received: Received) -> None:
        doc = received.document
        registration_id = text(doc, "reg:RegistrationId")
        identity_number = text(doc, "reg:Graduate/c:IdentityNumber")
        reasons = self.check(doc)
        key = (received.sender, registration_id)
        if reasons:
            answer = render(
                "registration-rejected",
                registration_id=registration_id,
                identity_number=identity_number,
                reasons=reasons,
                at=china_time(),
            )
            self.send(answer, received.sender, "RegistrationRejected", registration_id)
            with self._lock:
                self.rejected[key] = self.rejected.get(key, 0) + 1
            return
        transfer_number, verification_number = self._numbers()
        answer = render(
            "registration-filed",
            registration_id=registration_id,
            identity_number=identity_number,
            transfer_number=transfer_number,
            verification_number=verification_number,
            at=china_time(),
        )
        self.send(answer, received.sender, "RegistrationFiled", registration_id)
        with self._lock:
            self.filed[key] = transfer_number

    @staticmethod
    def check(doc: etree._Element) -> list[tuple[str, str]]:
        """The reasons to send a registration back (code, text); empty when it can be filed."""
        destination = text(doc, "reg:DestinationCode")
        reasons = []
        if destination in NEEDS_CONTRACT and doc.find("reg:ContractReference", NS) is None:
            reasons.append(
                (
                    "contract_reference_missing",
                    f"去向代码为{destination}，但未填写就业协议或劳动合同编号。",
                )
            )
        if destination in NEEDS_EMPLOYER and doc.find("reg:Employer", NS) is None:
            reasons.append(("employer_missing", f"去向代码为{destination}，但未填写用人单位信息。"))
        return reasons

    def _numbers(self) -> tuple[str, str]:
        with self._lock:
            self._issued += 1
            serial = self._issued
        year = datetime.now(UTC).year
        transfer = f"ZD{self.profile.region}{year}{serial:07d}"
        verification = f"HY{year}" + "".join(secrets.choice(_ALPHABET) for _ in range(10))
        return transfer, verification
