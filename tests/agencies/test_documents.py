"""Every document template renders a document the gateway's schemas and code checks accept."""

from __future__ import annotations

from datetime import date

import pytest
from lxml import etree

from agencies.documents import NS, business_document, render, text
from agencies.records import Graduate
from gateway.demo.cast import load_cast
from gateway.demo.graduates import make_graduates
from gateway.domain.validation import check_codes
from gateway.errors import CodeInvalid
from gateway.intake.catalog import ServiceCatalog
from gateway.settings import SCHEMAS_DIR
from gateway.xmlparse import parse_untrusted

AT = "2026-06-10T10:15:00+08:00"


@pytest.fixture(scope="module")
def graduates() -> list[Graduate]:
    return make_graduates(load_cast(), 30, seed=11, year=2026)


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    return ServiceCatalog(SCHEMAS_DIR).schema


def documents(g: Graduate) -> dict[str, bytes]:
    """One rendering of each template for graduate ``g``."""
    offer = g.offers[0] if g.offers else None
    found = {
        "destination-registration": render(
            "destination-registration",
            g=g,
            identity_number=g.identity_number,
            contract_reference=g.contract_reference,
            at=AT,
        ),
        "registration-filed": render(
            "registration-filed",
            registration_id=g.registration_id,
            identity_number=g.identity_number,
            transfer_number="ZD11000020260000001",
            verification_number="HY2026ABCDEFGHJK",
            at=AT,
        ),
        "registration-rejected": render(
            "registration-rejected",
            registration_id=g.registration_id,
            identity_number=g.identity_number,
            reasons=[("contract_reference_missing", "未填写合同编号。"), ("employer_missing", "未填写用人单位。")],
            at=AT,
        ),
        "agreement-response": render(
            "agreement-response",
            agreement_id="AGR-2026-000001",
            identity_number=g.identity_number,
            decision="accept",
            at=AT,
        ),
        "agreement-review": render("agreement-review", agreement_id="AGR-1", decision="reject", reason="不符", at=AT),
        "agreement-cancellation-review": render(
            "agreement-cancellation-review", agreement_id="AGR-1", decision="approve", reason=None, at=AT
        ),
        "agreement-cancellation": render(
            "agreement-cancellation", agreement_id="AGR-1", requested_by="employer", reason="协商一致", at=AT
        ),
        "archive-transfer-request": render(
            "archive-transfer-request",
            request_id="ATR-1",
            identity_number=g.identity_number,
            name=g.name,
            transfer_number="ZD11000020260000001",
            receiver=g.archive_receiver,
            at=AT,
        ),
        "archive-transfer-manifest": render(
            "archive-transfer-manifest",
            g=g,
            documents=g.documents,
            manifest_id="ATM-1",
            request_id=None,
            transfer_number="ZD11000020260000001",
            method=g.dispatch_method,
            waybill="JY-1101-00000001",
            at=AT,
        ),
        "archive-receipt": render(
            "archive-receipt",
            manifest_id="ATM-1",
            identity_number=g.identity_number,
            documents=[(d.document_id, "received", None) for d in g.documents] + [("D99", "damaged", "受潮")],
            at=AT,
        ),
    }
    for number, (kind, value) in enumerate(
        (("transfer_number", "ZD11000020260000001"), ("verification_number", "HY2026ABCDEFGHJK"))
    ):
        found[f"graduate-verification-request/{kind}"] = render(
            "graduate-verification-request",
            request_id=f"VER-000075-{number:06d}",
            name=g.name,
            transfer_number=value if kind == "transfer_number" else None,
            verification_number=value if kind == "verification_number" else None,
            identity_number=g.identity_number if kind == "verification_number" else None,
            facts=("identity_match", "education", "destination", "archive")[: number + 2],
            purpose="settlement",
            purpose_text="毕业生申请在就业地落户。",
            token="ABCD-EFGH",
        )
    if offer is not None:
        found["agreement-offer"] = render(
            "agreement-offer",
            offer=offer,
            g=g,
            valid_from=date(2026, 5, 1),
            valid_until=date(2026, 5, 31),
            contact_name="王芳",
            contact_phone="010-60000006",
            at=AT,
        )
    return found


def test_every_template_is_rendered_here() -> None:
    from agencies.documents import _templates

    assert {name.removesuffix(".xml") for name in _templates.list_templates()} == {
        "destination-registration",
        "registration-filed",
        "registration-rejected",
        "agreement-offer",
        "agreement-response",
        "agreement-review",
        "agreement-cancellation-review",
        "agreement-cancellation",
        "archive-transfer-request",
        "archive-transfer-manifest",
        "archive-receipt",
        "graduate-verification-request",
    }


def test_rendered_documents_are_valid_for_every_graduate(graduates: list[Graduate], schema: etree.XMLSchema) -> None:
    rendered = 0
    for graduate in graduates:
        for name, data in documents(graduate).items():
            document = parse_untrusted(data).getroot()
            assert schema.validate(document), f"{name} of graduate {graduate.index}: {schema.error_log.last_error}"
            check_codes(document)
            rendered += 1
    assert rendered >= 30 * 10


def test_a_registration_carries_what_the_archive_rules_need(graduates: list[Graduate]) -> None:
    targeted = next(g for g in graduates if g.targeted_unit is not None)
    document = parse_untrusted(
        render(
            "destination-registration",
            g=targeted,
            identity_number=targeted.identity_number,
            contract_reference=None,
            at=AT,
        )
    ).getroot()
    assert text(document, "reg:TargetedEmployment/reg:TargetedUnit/c:CreditCode") == targeted.targeted_unit.credit_code
    assert text(document, "reg:ArchiveReceiver") == targeted.archive_receiver.credit_code
    assert document.find("reg:ContractReference", NS) is None
    studying = next(g for g in graduates if g.admitting_institution is not None)
    document = parse_untrusted(
        render(
            "destination-registration",
            g=studying,
            identity_number=studying.identity_number,
            contract_reference=None,
            at=AT,
        )
    ).getroot()
    assert text(document, "reg:AdmittingInstitution/c:CreditCode") == studying.archive_receiver.credit_code
    assert document.find("reg:Employer", NS) is None


def test_values_are_escaped_not_spliced_into_the_xml() -> None:
    data = render(
        "agreement-cancellation", agreement_id="AGR-1", requested_by="employer", reason='<x/> & "quotes" ]]>', at=AT
    )
    document = parse_untrusted(data).getroot()
    assert text(document, "agr:Reason") == '<x/> & "quotes" ]]>'
    assert len(document) == 4


def test_a_missing_value_fails_instead_of_leaving_an_empty_element() -> None:
    from jinja2 import UndefinedError

    with pytest.raises(UndefinedError):
        render("registration-filed", registration_id="R-1")


def test_the_identity_typo_is_caught_by_the_code_check(graduates: list[Graduate]) -> None:
    from agencies.university import _with_typo

    g = graduates[0]
    data = render(
        "destination-registration",
        g=g,
        identity_number=_with_typo(g.identity_number),
        contract_reference=g.contract_reference,
        at=AT,
    )
    with pytest.raises(CodeInvalid, match="IdentityNumber") as raised:
        check_codes(parse_untrusted(data).getroot())
    assert g.identity_number[:17] not in str(raised.value)


def test_business_document_is_the_single_child_of_the_body() -> None:
    envelope = etree.fromstring(
        b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header/>'
        b'<s:Body><a xmlns="urn:x"/></s:Body></s:Envelope>'
    )
    assert etree.QName(business_document(envelope)).localname == "a"
    empty = etree.fromstring(b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body/></s:Envelope>')
    with pytest.raises(ValueError, match="exactly one"):
        business_document(empty)
