"""What the agency systems decide on their own, without a gateway: the department's checks, the
employer's reading of answers arriving in any order, the inbox's de-duplication, resending after a lost
connection."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from types import SimpleNamespace

import pytest
import requests
from lxml import etree
from stdnum.cn import ric

from agencies.base import PUSH, Agency, Received, Refusal
from agencies.documents import NS, render
from agencies.education_department import EducationDepartment
from agencies.employer import Employer
from agencies.hukou_office import NOT_SETTLED, SETTLED, HouseholdRegistrationOffice
from agencies.records import IN_THE_PORTAL, Graduate, Offer, Organisation
from agencies.talent_agency import TalentServiceAgency
from agencies.university import University, _with_typo
from agencies.verification import Presented
from gateway.agreements.machine import Step
from gateway.demo.cast import load_cast
from gateway.demo.graduates import make_graduates
from gateway.graduates.offers import answer_document
from gateway.sdk.client import GatewayRefusal
from gateway.sdk.verification import Archive, Destination, Education, VerifiedVerification
from gateway.sdk.verification import Organisation as VerifiedOrganisation
from gateway.xmlparse import parse_untrusted

EMPLOYER = Organisation("91110108500000006J", "北京示范科技有限公司", "employer", "110108", "39")


def answer(template: str, **values: str) -> Received:
    document = parse_untrusted(render(template, at="2026-06-10T10:15:00+08:00", **values)).getroot()
    return Received("12110108400000008J", "m-" + template, etree.QName(document).localname, document)


def test_the_department_sends_back_an_agreement_without_its_contract_number() -> None:
    registration = etree.fromstring(
        b'<reg:DestinationRegistration xmlns:reg="urn:gradex:registration:1">'
        b"<reg:DestinationCode>10</reg:DestinationCode></reg:DestinationRegistration>"
    )
    codes = [code for code, _ in EducationDepartment.check(registration)]
    assert codes == ["contract_reference_missing", "employer_missing"]
    studying = etree.fromstring(
        b'<reg:DestinationRegistration xmlns:reg="urn:gradex:registration:1">'
        b"<reg:DestinationCode>801</reg:DestinationCode></reg:DestinationRegistration>"
    )
    assert EducationDepartment.check(studying) == []


def test_the_employer_reads_the_state_off_the_answers_in_any_order() -> None:
    steps = [
        ("agreement-response", {"identity_number": "11010519491231002X", "decision": "accept"}),
        ("agreement-review", {"decision": "approve", "reason": ""}),
    ]
    for order in itertools.permutations(steps):
        employer = Employer(EMPLOYER, PUSH, "王芳", "010-60000006")
        employer._note("AGR-1", "offered")
        assert employer.state("AGR-1") == "offered"
        for template, values in order:
            received = answer(template, agreement_id="AGR-1", **values)
            employer.handlers[received.service](received)
        assert employer.state("AGR-1") == "signed"
    refused = Employer(EMPLOYER, PUSH, "王芳", "010-60000006")
    received = answer(
        "agreement-response", agreement_id="AGR-2", identity_number="11010519491231002X", decision="refuse"
    )
    refused.handlers[received.service](received)
    assert refused.state("AGR-2") == "refused"
    assert refused.state("AGR-3") is None


class _Delivery:
    def __init__(self, sender: str, message_id: str) -> None:
        self.sender, self.message_id, self.service = sender, message_id, "RegistrationFiled"
        self.original = etree.fromstring(
            b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
            b'<reg:RegistrationFiled xmlns:reg="urn:gradex:registration:1"/></s:Body></s:Envelope>'
        )


def test_a_delivery_taken_twice_is_handled_once() -> None:
    agency = Agency(EMPLOYER, PUSH)  # push: nothing to poll
    handled: list[str] = []
    agency.handlers["RegistrationFiled"] = lambda received: handled.append(received.message_id)
    agency.start()
    try:
        for message_id in ("a", "b", "a", "a"):
            assert agency.take(_Delivery("S", message_id))  # type: ignore[arg-type]
        agency.take(_Delivery("T", "a"))  # type: ignore[arg-type]  # another sender's "a" is another message
        agency._inbox.join()
    finally:
        agency.stop()
    assert sorted(handled) == ["a", "a", "b"]
    assert agency.failures == []


def test_a_failing_handler_is_reported_not_swallowed() -> None:
    agency = Agency(EMPLOYER, PUSH)

    def broken(received: Received) -> None:
        raise ValueError("no such student file")

    agency.handlers["RegistrationFiled"] = broken
    agency.start()
    try:
        agency.take(_Delivery("S", "x"))  # type: ignore[arg-type]
        agency._inbox.join()
    finally:
        agency.stop()
    assert agency.failures == ["RegistrationFiled x: ValueError: no such student file"]


def test_the_typo_changes_only_the_check_character_and_is_never_valid() -> None:
    for number in ("11010519491231002X", "110105194912310020", "440514200401011231"):
        typo = _with_typo(number)
        assert typo[:17] == number[:17] and typo != number
        assert not ric.is_valid(typo)


class _FlakyClient:
    """Loses the connection on the first send, then accepts; records the message ids it was given."""

    def __init__(self) -> None:
        self.message_ids: list[str] = []

    def send(self, document: bytes, **routing: str) -> SimpleNamespace:
        self.message_ids.append(routing["message_id"])
        if len(self.message_ids) == 1:
            raise requests.ConnectionError("Connection reset by peer")
        return SimpleNamespace(message_id=routing["message_id"])


def test_a_lost_connection_resends_under_the_same_message_id() -> None:
    agency = Agency(EMPLOYER, PUSH)
    flaky = _FlakyClient()
    agency._client = flaky  # type: ignore[assignment]
    sent = agency.send(b"<x/>", "12110108400000008J", "AgreementOffer")
    assert len(flaky.message_ids) == 2 and flaky.message_ids[0] == flaky.message_ids[1] == sent.message_id
    assert agency.sent["AgreementOffer"] == 1 and agency.refusals == []


class _RecordingClient:
    """Accepts every document and keeps it, with its recipient, for the test to read."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, etree._Element]] = []

    def send(self, document: bytes, **routing: str) -> SimpleNamespace:
        self.sent.append((routing["recipient"], parse_untrusted(document).getroot()))
        return SimpleNamespace(message_id=routing["message_id"])


def test_the_university_reviews_an_answer_from_the_portal_and_corrects_the_registration() -> None:
    cast = load_cast()
    graduate = next(g for g in make_graduates(cast, 12, seed=3, year=2026) if g.registered_first_as is not None)
    offer = graduate.offers[0]
    assert offer.answered_in == IN_THE_PORTAL and offer.decision == "accept"
    university = University(cast.organisation("university"), PUSH, cast["education_department"].id)
    client = _RecordingClient()
    university._client = client  # type: ignore[assignment]
    university.enrol([graduate])
    university.register(graduate)
    first = client.sent[-1][1]
    assert first.findtext("reg:DestinationCode", namespaces=NS) == "70" and first.find("reg:Employer", NS) is None
    # The employer's offer: the graduate answers in the portal, so the office relays nothing.
    university._on_offer(answer_to_university(render_offer(graduate, offer)))
    assert len(client.sent) == 1
    # The gateway's AgreementResponse, as the platform sends it: the agreement and the employer, no identity number.
    platform = answer_document(offer.agreement_id, offer.employer.credit_code, Step.ACCEPT, datetime.now(UTC))
    university._on_portal_answer(Received("12100000MB0000009G", "m-2", "AgreementResponse", platform))
    (to_employer, review), (to_department, corrected) = client.sent[1:]
    assert to_employer == offer.employer.credit_code and etree.QName(review).localname == "AgreementReview"
    assert review.findtext("agr:Decision", namespaces=NS) == "approve"
    assert to_department == cast["education_department"].id
    assert corrected.findtext("reg:DestinationCode", namespaces=NS) == "10"
    assert corrected.findtext("reg:ContractReference", namespaces=NS) == offer.agreement_id
    assert corrected.findtext("reg:RegistrationId", namespaces=NS) == graduate.registration_id
    assert university.file(graduate.identity_number).registered_as == graduate


def render_offer(graduate: Graduate, offer: Offer) -> bytes:
    return render(
        "agreement-offer",
        offer=offer,
        g=graduate,
        valid_from=date(2026, 5, 1),
        valid_until=date(2026, 5, 31),
        contact_name="王芳",
        contact_phone="010-60000006",
        at="2026-05-01T09:00:00+08:00",
    )


def answer_to_university(document: bytes) -> Received:
    root = parse_untrusted(document).getroot()
    return Received("91110102100000005B", "m-1", etree.QName(root).localname, root)


def _verified(**facts: object) -> VerifiedVerification:
    school = VerifiedOrganisation("12110108400000008J", "北京示范大学")
    values: dict[str, object] = {
        "identity_match": True,
        "education": Education(school, "bachelor", "计算机科学与技术", date(2026, 6, 30)),
        "destination": Destination("10", VerifiedOrganisation(EMPLOYER.credit_code, EMPLOYER.name)),
        "archive": None,
        **facts,
    }
    return VerifiedVerification(
        request_id="VER-1",
        message_id="m",
        requester="x",
        grant_id="g",
        subject_name="李明",
        answered_at=datetime.now(UTC),
        xml=b"",
        **values,  # type: ignore[arg-type]
    )


def test_each_verifier_decides_on_the_verified_facts() -> None:
    office = HouseholdRegistrationOffice(
        Organisation("111101080000000075", "海淀分局", "household_registration_office", "110108"), PUSH
    )
    assert office.decide(_verified()) == SETTLED
    assert office.decide(_verified(destination=Destination("70", None))) == NOT_SETTLED
    assert office.decide(_verified(identity_match=False)) == NOT_SETTLED
    employer = Employer(EMPLOYER, PUSH, "王芳", "010-60000006")
    assert employer.decide(_verified()) == "taken on"
    assert employer.decide(_verified(education=None)).startswith("not taken on")
    agency = TalentServiceAgency(
        Organisation("12110000400000003A", "北京市人才服务中心", "talent_service_agency", "110000"), PUSH
    )
    here = Archive(VerifiedOrganisation(agency.id, agency.profile.name), "received")
    assert agency.decide(_verified(archive=here)) == "file opened: the archive is held here"
    away = Archive(VerifiedOrganisation("12110108400000008J", "北京示范大学"), "dispatched")
    assert agency.decide(_verified(archive=away)) == "file opened: the archive is dispatched, held by 北京示范大学"


class _RefusingClient:
    def send(self, document: bytes, **routing: str) -> SimpleNamespace:
        raise GatewayRefusal("AUTHORISATION_REVOKED", "grant g was revoked by the graduate", 500)


def test_a_refused_verification_is_kept_with_its_code_and_raised_for_the_clerk() -> None:
    office = HouseholdRegistrationOffice(
        Organisation("111101080000000075", "海淀分局", "household_registration_office", "110108"), PUSH
    )
    office._client = _RefusingClient()  # type: ignore[assignment]
    presented = Presented("李明", "ABCD-EFGH", verification_number="HY2026ABCDEFGHJK")
    with pytest.raises(GatewayRefusal):
        office.verify("11110000000000001R", presented, ("identity_match",), "settlement", "落户")
    assert [(v.request_id, v.outcome) for v in office.verifications] == [("VER-000075-000001", "AUTHORISATION_REVOKED")]
    assert office.refusals == [Refusal("GraduateVerificationRequest", "AUTHORISATION_REVOKED")]
