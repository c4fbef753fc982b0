"""Online signing end to end through POST /soap: the whole flow, and each out-of-order message refused.

The app runs on a fixed clock (messages are signed at the same instant) so that a test can step
past the offer's validity period. A refused message changes nothing in the agreement's row.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree
from sqlalchemy import func, inspect, select

from gateway.agreements.machine import china_day
from gateway.agreements.models import Agreement
from gateway.clock import BEIJING, FixedClock
from gateway.messages.models import Message
from gateway.privacy import IdentityHasher
from gateway.sdk.envelope import wrap
from gateway.settings import Settings
from gateway.store.db import transaction
from gateway.web.app import create_app
from tests.conftest import PRIVATE_EMPLOYER, SOE_EMPLOYER, UNIVERSITY, Signer, example

NS = {"soapenv": "http://schemas.xmlsoap.org/soap/envelope/", "gw": "urn:gradex:gateway:1"}
AGREEMENT_ID = "AGR-2025-000123"
IDENTITY_NUMBER = "11010520030315041X"

Row = dict[str, Any] | None
Send = Callable[..., tuple[int, etree._Element]]


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def app(settings: Settings, clock: FixedClock) -> Iterator[Flask]:
    """The conftest ``app`` on a clock the test can move (``client`` uses this one)."""
    application = create_app(settings, clock=clock)
    application.config["TESTING"] = True
    yield application
    application.extensions["gateway"].engine.dispose()


def fault_code(body: etree._Element) -> str:
    code = body.findtext(".//gw:FaultDetail/gw:Code", namespaces=NS)
    assert code, etree.tostring(body)
    return code


def document(name: str, **values: str) -> bytes:
    """The example ``name`` with the text of each ``agr:<Tag>`` (or ``c:<Tag>``) named in ``values`` replaced."""
    data = example(name)
    for tag, value in values.items():
        data, count = re.subn(
            rf"<(agr|c):{tag}>[^<]*</(agr|c):{tag}>".encode(), rf"<\1:{tag}>{value}</\2:{tag}>".encode(), data
        )
        assert count == 1, tag
    return data


@pytest.fixture
def send(client: FlaskClient, sign: Signer, clock: FixedClock) -> Send:
    """``send(document, service, sender, recipient)``: wrapped and signed at the clock's time, posted."""

    def post(data: bytes, service: str, sender: str, recipient: str) -> tuple[int, etree._Element]:
        envelope = wrap(data, sender=sender, recipient=recipient, service=service, created_at=clock.now())
        response = client.post(
            "/soap", data=sign(envelope, as_=sender, now=clock.now()), content_type="text/xml; charset=utf-8"
        )
        return response.status_code, etree.fromstring(response.data)

    return post


def agreement_row(app: Flask, employer: str = PRIVATE_EMPLOYER) -> Row:
    with transaction(app.extensions["gateway"].sessions) as session:
        record = session.scalar(
            select(Agreement).where(Agreement.employer_id == employer, Agreement.agreement_id == AGREEMENT_ID)
        )
        if record is None:
            return None
        return {attr.key: getattr(record, attr.key) for attr in inspect(Agreement).column_attrs}


def stored_messages(app: Flask) -> int:
    with transaction(app.extensions["gateway"].sessions) as session:
        return session.scalar(select(func.count()).select_from(Message)) or 0


@pytest.fixture
def valid_until(clock: FixedClock) -> date:
    return china_day(clock.now()) + timedelta(days=3)


@pytest.fixture
def offer(send: Send, clock: FixedClock, valid_until: date) -> Callable[..., tuple[int, etree._Element]]:
    """Send the example offer, valid from yesterday to ``valid_until`` (China time), with changes."""

    def make(**values: str) -> tuple[int, etree._Element]:
        fields = {"ValidFrom": str(china_day(clock.now()) - timedelta(days=1)), "ValidUntil": str(valid_until)}
        fields.update(values)
        return send(document("agreement-offer", **fields), "AgreementOffer", PRIVATE_EMPLOYER, UNIVERSITY)

    return make


# The flow's later messages, all about the one agreement of agreement-offer.xml.
def response(decision: str = "accept", identity_number: str = IDENTITY_NUMBER) -> bytes:
    return document("agreement-response", Decision=decision, IdentityNumber=identity_number)


def review(decision: str = "approve") -> bytes:
    return document("agreement-review", Decision=decision)


def cancellation(requested_by: str) -> bytes:
    return document("agreement-cancellation", AgreementId=AGREEMENT_ID, RequestedBy=requested_by)


def cancellation_review(decision: str = "approve") -> bytes:
    return document("agreement-cancellation-review", AgreementId=AGREEMENT_ID, Decision=decision)


def accepted(status: int, body: etree._Element) -> None:
    assert status == 200, etree.tostring(body)
    assert body.findtext(".//gw:Receipt/gw:Status", namespaces=NS) == "accepted"


@pytest.fixture
def refused(app: Flask, send: Send) -> Callable[..., None]:
    """``refused(code, data, service, sender, recipient)``: sends it, expects ``code``, and no change at all."""

    def check(code: str, data: bytes, service: str, sender: str, recipient: str) -> None:
        before, count = agreement_row(app), stored_messages(app)
        status, body = send(data, service, sender, recipient)
        assert (status, fault_code(body)) == (500, code), etree.tostring(body)
        assert agreement_row(app) == before
        assert stored_messages(app) == count

    return check


def test_offer_acceptance_review_and_cancellation_by_the_employer(
    app: Flask, send: Send, offer: Callable[..., Any], settings: Settings, valid_until: date
) -> None:
    accepted(*offer())
    row = agreement_row(app)
    assert row is not None
    assert row["state"] == "offered"
    assert (row["employer_id"], row["university_id"]) == (PRIVATE_EMPLOYER, UNIVERSITY)
    assert (row["graduate_name"], row["position"], row["work_region"]) == ("李明", "软件开发工程师", "110108")
    assert row["valid_until"] == valid_until
    hasher = IdentityHasher.from_file(settings.keys_dir / "secrets" / "identity-hash.key")
    assert row["identity_hash"] == hasher(IDENTITY_NUMBER) != IDENTITY_NUMBER

    accepted(*send(response("accept"), "AgreementResponse", UNIVERSITY, PRIVATE_EMPLOYER))
    assert (agreement_row(app) or {})["state"] == "accepted"
    accepted(*send(review("approve"), "AgreementReview", UNIVERSITY, PRIVATE_EMPLOYER))
    assert (agreement_row(app) or {})["state"] == "signed"
    accepted(*send(cancellation("employer"), "AgreementCancellation", PRIVATE_EMPLOYER, UNIVERSITY))
    row = agreement_row(app) or {}
    assert (row["state"], row["cancellation_requested_by"]) == ("cancellation_requested", "employer")
    accepted(*send(cancellation_review("approve"), "AgreementCancellationReview", UNIVERSITY, PRIVATE_EMPLOYER))
    row = agreement_row(app) or {}
    assert (row["state"], row["cancellation_requested_by"]) == ("cancelled", "employer")


def test_cancellation_by_the_graduate_rejected_in_review_leaves_it_signed(
    app: Flask, send: Send, offer: Callable[..., Any]
) -> None:
    accepted(*offer())
    accepted(*send(response("accept"), "AgreementResponse", UNIVERSITY, PRIVATE_EMPLOYER))
    accepted(*send(review("approve"), "AgreementReview", UNIVERSITY, PRIVATE_EMPLOYER))
    accepted(*send(cancellation("graduate"), "AgreementCancellation", UNIVERSITY, PRIVATE_EMPLOYER))
    assert (agreement_row(app) or {})["cancellation_requested_by"] == "graduate"
    accepted(*send(cancellation_review("reject"), "AgreementCancellationReview", UNIVERSITY, PRIVATE_EMPLOYER))
    row = agreement_row(app) or {}
    assert (row["state"], row["cancellation_requested_by"]) == ("signed", None)


def test_a_refused_offer_may_be_offered_again_under_its_id(
    app: Flask, send: Send, offer: Callable[..., Any], refused: Callable[..., None]
) -> None:
    accepted(*offer())
    refused("AGREEMENT_OUT_OF_ORDER", document("agreement-offer"), "AgreementOffer", PRIVATE_EMPLOYER, UNIVERSITY)
    accepted(*send(response("refuse"), "AgreementResponse", UNIVERSITY, PRIVATE_EMPLOYER))
    assert (agreement_row(app) or {})["state"] == "refused"
    accepted(*offer(Position="测试工程师"))
    row = agreement_row(app) or {}
    assert (row["state"], row["position"]) == ("offered", "测试工程师")


def test_response_before_any_offer_is_unknown(refused: Callable[..., None]) -> None:
    refused("AGREEMENT_UNKNOWN", response(), "AgreementResponse", UNIVERSITY, PRIVATE_EMPLOYER)


def test_review_before_acceptance_is_out_of_order(offer: Callable[..., Any], refused: Callable[..., None]) -> None:
    accepted(*offer())
    refused("AGREEMENT_OUT_OF_ORDER", review(), "AgreementReview", UNIVERSITY, PRIVATE_EMPLOYER)


def test_a_second_response_is_out_of_order(send: Send, offer: Callable[..., Any], refused: Callable[..., None]) -> None:
    accepted(*offer())
    accepted(*send(response("accept"), "AgreementResponse", UNIVERSITY, PRIVATE_EMPLOYER))
    refused("AGREEMENT_OUT_OF_ORDER", response("accept"), "AgreementResponse", UNIVERSITY, PRIVATE_EMPLOYER)
    refused("AGREEMENT_OUT_OF_ORDER", response("refuse"), "AgreementResponse", UNIVERSITY, PRIVATE_EMPLOYER)


def test_cancellation_while_under_review_is_out_of_order(
    send: Send, offer: Callable[..., Any], refused: Callable[..., None]
) -> None:
    accepted(*offer())
    accepted(*send(response("accept"), "AgreementResponse", UNIVERSITY, PRIVATE_EMPLOYER))
    refused("AGREEMENT_OUT_OF_ORDER", cancellation("employer"), "AgreementCancellation", PRIVATE_EMPLOYER, UNIVERSITY)


def test_response_on_the_last_valid_day_is_accepted(
    send: Send, offer: Callable[..., Any], clock: FixedClock, valid_until: date
) -> None:
    accepted(*offer())
    clock.set(datetime.combine(valid_until, time(23, 59, 0), tzinfo=BEIJING).astimezone(UTC))
    accepted(*send(response(), "AgreementResponse", UNIVERSITY, PRIVATE_EMPLOYER))


def test_response_after_valid_until_is_expired(
    offer: Callable[..., Any], refused: Callable[..., None], clock: FixedClock, valid_until: date
) -> None:
    accepted(*offer())
    clock.set(datetime.combine(valid_until + timedelta(days=1), time(0, 0, 30), tzinfo=BEIJING).astimezone(UTC))
    refused("AGREEMENT_OFFER_EXPIRED", response(), "AgreementResponse", UNIVERSITY, PRIVATE_EMPLOYER)


def test_offers_that_could_never_be_answered_are_refused(
    clock: FixedClock, send: Send, refused: Callable[..., None]
) -> None:
    today = china_day(clock.now())
    yesterday, last_week = str(today - timedelta(days=1)), str(today - timedelta(days=7))
    empty = document("agreement-offer", ValidFrom=str(today), ValidUntil=yesterday)
    refused("AGREEMENT_OUT_OF_ORDER", empty, "AgreementOffer", PRIVATE_EMPLOYER, UNIVERSITY)
    over = document("agreement-offer", ValidFrom=last_week, ValidUntil=yesterday)
    refused("AGREEMENT_OFFER_EXPIRED", over, "AgreementOffer", PRIVATE_EMPLOYER, UNIVERSITY)


def test_a_response_for_another_graduate_is_unknown(offer: Callable[..., Any], refused: Callable[..., None]) -> None:
    accepted(*offer())
    refused(
        "AGREEMENT_UNKNOWN",
        response(identity_number="11010519491231002X"),
        "AgreementResponse",
        UNIVERSITY,
        PRIVATE_EMPLOYER,
    )


def test_a_response_to_another_employer_is_unknown(offer: Callable[..., Any], refused: Callable[..., None]) -> None:
    accepted(*offer())
    refused("AGREEMENT_UNKNOWN", response(), "AgreementResponse", UNIVERSITY, SOE_EMPLOYER)


def test_each_party_speaks_only_for_itself(send: Send, offer: Callable[..., Any], refused: Callable[..., None]) -> None:
    refused(
        "ACCESS_DENIED",
        document("agreement-offer", CreditCode=SOE_EMPLOYER),
        "AgreementOffer",
        PRIVATE_EMPLOYER,
        UNIVERSITY,
    )
    accepted(*offer())
    accepted(*send(response("accept"), "AgreementResponse", UNIVERSITY, PRIVATE_EMPLOYER))
    accepted(*send(review("approve"), "AgreementReview", UNIVERSITY, PRIVATE_EMPLOYER))
    refused("ACCESS_DENIED", cancellation("graduate"), "AgreementCancellation", PRIVATE_EMPLOYER, UNIVERSITY)
    refused("ACCESS_DENIED", cancellation("employer"), "AgreementCancellation", UNIVERSITY, PRIVATE_EMPLOYER)
