"""What the agency systems decide on their own, without a gateway: the department's checks, the
employer's reading of answers arriving in any order, the inbox's de-duplication, resending after a lost
connection."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import requests
from lxml import etree
from stdnum.cn import ric

from agencies.base import PUSH, Agency, Received
from agencies.documents import render
from agencies.education_department import EducationDepartment
from agencies.employer import Employer
from agencies.records import Organisation
from agencies.university import _with_typo
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
