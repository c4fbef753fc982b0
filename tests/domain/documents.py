"""Business documents for the served domain tests, built for one graduate at a time.

Each test takes graduates of its own (:func:`new_graduate`), so that the tests of a module can
share one served gateway without meeting each other's registrations or transfers.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from stdnum.cn import ric

from tests.conftest import AGENCY_CHAOYANG, PRIVATE_EMPLOYER, UNIVERSITY

_NUMBERS = itertools.count(1)


@dataclass(frozen=True)
class Graduate:
    identity_number: str
    name: str
    index: int

    @property
    def transfer_number(self) -> str:
        return f"ZD1100002025{self.index:07d}"

    @property
    def verification_number(self) -> str:
        return f"HY2025TEST{self.index:06d}"


def new_graduate() -> Graduate:
    """A graduate nobody else in the test session uses (a valid GB 11643 number from Chaoyang)."""
    index = next(_NUMBERS)
    first17 = f"11010520030101{index:03d}"
    return Graduate(first17 + ric.calc_check_digit(first17 + "X"), f"测试{index:03d}", index)


@dataclass(frozen=True)
class Employer:
    credit_code: str
    name: str
    unit_nature: str
    region: str


PRIVATE = Employer(PRIVATE_EMPLOYER, "北京示范科技有限公司", "39", "110108")
SOE = Employer("91110102100000005B", "中国示范能源集团有限公司", "31", "110102")


def registration(
    g: Graduate,
    registration_id: str,
    *,
    destination: str = "10",
    employer: Employer | None = PRIVATE,
    household: str = "110105",
    choice: str = "agency_at_household",
    receiver: str | None = AGENCY_CHAOYANG,
    targeted: Employer | None = None,
    release: str | None = None,
    contract: str | None = "AGR-2025-900001",
) -> bytes:
    employer_xml = (
        f"<reg:Employer><c:CreditCode>{employer.credit_code}</c:CreditCode><c:Name>{employer.name}</c:Name>"
        f"<c:UnitNature>{employer.unit_nature}</c:UnitNature><c:Region>{employer.region}</c:Region></reg:Employer>"
        if employer
        else ""
    )
    contract_xml = (
        f"<reg:ContractReference>{contract}</reg:ContractReference><reg:ContractDate>2025-05-20</reg:ContractDate>"
        if employer and contract
        else ""
    )
    targeted_xml = (
        "<reg:TargetedEmployment><reg:TargetedUnit>"
        f"<c:CreditCode>{targeted.credit_code}</c:CreditCode><c:Name>{targeted.name}</c:Name></reg:TargetedUnit>"
        "<reg:AgreementReference>DX-2021-000311</reg:AgreementReference>"
        + (f"<reg:ReleaseReference>{release}</reg:ReleaseReference>" if release else "")
        + "</reg:TargetedEmployment>"
        if targeted
        else ""
    )
    receiver_xml = f"<reg:ArchiveReceiver>{receiver}</reg:ArchiveReceiver>" if receiver else ""
    return (
        '<reg:DestinationRegistration xmlns:reg="urn:gradex:registration:1" xmlns:c="urn:gradex:common:1">'
        f"<reg:RegistrationId>{registration_id}</reg:RegistrationId>"
        f"<reg:Graduate><c:IdentityNumber>{g.identity_number}</c:IdentityNumber><c:Name>{g.name}</c:Name>"
        f"<c:School>{UNIVERSITY}</c:School><c:StudentNumber>2021{g.index:06d}</c:StudentNumber>"
        "<c:EducationLevel>bachelor</c:EducationLevel><c:Major>计算机科学与技术</c:Major><c:MajorCode>080901</c:MajorCode>"
        "<c:GraduationDate>2025-06-30</c:GraduationDate></reg:Graduate>"
        f"<reg:DestinationCode>{destination}</reg:DestinationCode>{employer_xml}{contract_xml}{targeted_xml}"
        f"<reg:HouseholdRegion>{household}</reg:HouseholdRegion>"
        f"<reg:ArchiveReceiverChoice>{choice}</reg:ArchiveReceiverChoice>{receiver_xml}"
        "<reg:RegisteredAt>2025-06-10T10:15:00+08:00</reg:RegisteredAt>"
        "</reg:DestinationRegistration>"
    ).encode()


def filing(
    g: Graduate,
    registration_id: str,
    filed_at: str = "2025-06-20T09:00:00+08:00",
    transfer_number: str | None = None,
) -> bytes:
    return (
        '<reg:RegistrationFiled xmlns:reg="urn:gradex:registration:1">'
        f"<reg:RegistrationId>{registration_id}</reg:RegistrationId>"
        f"<reg:IdentityNumber>{g.identity_number}</reg:IdentityNumber>"
        f"<reg:TransferNumber>{transfer_number or g.transfer_number}</reg:TransferNumber>"
        f"<reg:VerificationNumber>{g.verification_number}</reg:VerificationNumber>"
        f"<reg:FiledAt>{filed_at}</reg:FiledAt>"
        "</reg:RegistrationFiled>"
    ).encode()


# type, title, confidential
COMPLETE = (
    ("student_registration_form", "高等学校学生登记表", True),
    ("graduate_registration_form", "普通高等学校毕业生登记表", True),
    ("transcript", "学业成绩单", False),
    ("physical_examination_form", "毕业生体检表", False),
)


def manifest(
    g: Graduate,
    manifest_id: str,
    receiver: str,
    receiver_name: str = "接收单位",
    *,
    method: str = "confidential_communication",
    documents: tuple[tuple[str, str, bool], ...] = COMPLETE,
    transfer_number: str | None = None,
) -> bytes:
    listed = "".join(
        f"<arc:Document><arc:DocumentId>D{n:02d}</arc:DocumentId><arc:Type>{kind}</arc:Type>"
        f"<arc:Title>{title}</arc:Title><arc:Pages>2</arc:Pages><arc:ScanSha256>{'ab' * 32}</arc:ScanSha256>"
        f"<arc:Confidential>{'true' if secret else 'false'}</arc:Confidential></arc:Document>"
        for n, (kind, title, secret) in enumerate(documents, start=1)
    )
    return (
        '<arc:ArchiveTransferManifest xmlns:arc="urn:gradex:archive:1" xmlns:c="urn:gradex:common:1">'
        f"<arc:ManifestId>{manifest_id}</arc:ManifestId>"
        f"<arc:IdentityNumber>{g.identity_number}</arc:IdentityNumber><arc:Name>{g.name}</arc:Name>"
        f"<arc:TransferNumber>{transfer_number or g.transfer_number}</arc:TransferNumber>"
        f"<arc:ReceivingUnit><c:CreditCode>{receiver}</c:CreditCode><c:Name>{receiver_name}</c:Name></arc:ReceivingUnit>"
        f"<arc:Dispatch><arc:Method>{method}</arc:Method>"
        "<arc:DispatchedAt>2025-07-08T15:00:00+08:00</arc:DispatchedAt></arc:Dispatch>"
        f"<arc:Documents>{listed}</arc:Documents>"
        "</arc:ArchiveTransferManifest>"
    ).encode()


def receipt(g: Graduate, manifest_id: str, documents: int = len(COMPLETE)) -> bytes:
    rows = "".join(
        f"<arc:DocumentReceipt><arc:DocumentId>D{n:02d}</arc:DocumentId><arc:Status>received</arc:Status>"
        "</arc:DocumentReceipt>"
        for n in range(1, documents + 1)
    )
    return (
        '<arc:ArchiveReceipt xmlns:arc="urn:gradex:archive:1">'
        f"<arc:ManifestId>{manifest_id}</arc:ManifestId><arc:IdentityNumber>{g.identity_number}</arc:IdentityNumber>"
        f"<arc:ReceivedAt>2025-07-11T10:20:00+08:00</arc:ReceivedAt>{rows}</arc:ArchiveReceipt>"
    ).encode()


def directory_update(**fields: str) -> bytes:
    """A ``DirectoryEntryUpdate`` with the given elements (``ContactPhone="010-1"``; "" clears one)."""
    inner = "".join(f"<dir:{name}>{value}</dir:{name}>" for name, value in fields.items())
    return f'<dir:DirectoryEntryUpdate xmlns:dir="urn:gradex:directory:1">{inner}</dir:DirectoryEntryUpdate>'.encode()


def verification_request(g: Graduate, token: str, facts: tuple[str, ...], purpose: str = "settlement") -> bytes:
    asked = "".join(f"<ver:Fact>{fact}</ver:Fact>" for fact in facts)
    return (
        '<ver:GraduateVerificationRequest xmlns:ver="urn:gradex:verification:1">'
        f"<ver:RequestId>VER-TEST-{g.index:06d}</ver:RequestId>"
        f"<ver:Subject><ver:Name>{g.name}</ver:Name><ver:TransferNumber>{g.transfer_number}</ver:TransferNumber>"
        f"</ver:Subject><ver:RequestedFacts>{asked}</ver:RequestedFacts><ver:Purpose>{purpose}</ver:Purpose>"
        f"<ver:AuthorisationToken>{token}</ver:AuthorisationToken>"
        "</ver:GraduateVerificationRequest>"
    ).encode()
