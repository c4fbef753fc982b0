"""Short codes: another verifier's code is an unknown code, and guessing is throttled per verifier and per address."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select

from gateway.graduates.models import GraduateAccount
from gateway.grants.models import GrantUse
from gateway.settings import Settings
from gateway.store.db import transaction
from gateway.web.app import create_app
from tests.conftest import AGENCY_CHAOYANG, HUKOU_OFFICE, PRIVATE_EMPLOYER, Signer
from tests.graduates.helpers import LI_MING, activated, context
from tests.grants.helpers import Answer, ask, grant, verification_request

UNKNOWN_CODE = "2345-6789"


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    """The conftest ``app`` with a short-code limit small enough to reach: 3 wrong codes an hour."""
    application = create_app(settings.with_overrides(short_code_rate_limit="3 per hour"))
    application.config["TESTING"] = True
    yield application
    application.extensions["gateway"].engine.dispose()


@pytest.fixture
def li_ming(app: Flask, client: FlaskClient, sign: Signer) -> GraduateAccount:
    return activated(app, client, sign, LI_MING)


def client_at(app: Flask, address: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def answer_of(answer: Answer) -> tuple[int, str | None, str, str | None]:
    """What the sender learns: HTTP status, fault code, fault text and faultstring."""
    return answer.status, answer.fault, answer.text, answer.body.findtext(".//faultstring")


def test_another_verifiers_short_code_answers_exactly_like_an_unknown_one(
    app: Flask, client: FlaskClient, sign: Signer, li_ming: GraduateAccount
) -> None:
    theirs = grant(app, li_ming, verifier_id=AGENCY_CHAOYANG)  # the graduate gave it to the agency
    statements: list[list[str]] = []

    def note(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements[-1].append(" ".join(statement.split()))

    engine = context(app).engine
    event.listen(engine, "before_cursor_execute", note)
    answers = []
    for code in (theirs.short_code, UNKNOWN_CODE):
        statements.append([])
        answers.append(answer_of(ask(client, sign, verification_request(code))))  # sent by the hukou office
    event.remove(engine, "before_cursor_execute", note)
    known, unknown = answers
    assert known == unknown == (500, "AUTHORISATION_INVALID", "no authorisation has this short code", known[3])
    # The same work for both (the same statements, in the same order): no timing tells them apart.
    assert statements[0] == statements[1]
    with transaction(context(app).sessions) as session:
        refused = session.scalars(select(GrantUse).order_by(GrantUse.id)).all()
        assert [(u.grant_id, u.fault_code) for u in refused] == [(None, "AUTHORISATION_INVALID")] * 2
    # The agency itself is answered with the facts.
    assert ask(client, sign, verification_request(theirs.short_code), sender=AGENCY_CHAOYANG).status == 200


def test_wrong_short_codes_are_throttled_per_verifier(app: Flask, sign: Signer, li_ming: GraduateAccount) -> None:
    own = grant(app, li_ming)  # the hukou office's
    for n in range(3):
        guess = ask(client_at(app, f"192.0.2.{n + 1}"), sign, verification_request(UNKNOWN_CODE))
        assert guess.fault == "AUTHORISATION_INVALID"
    # From yet another address, even its own right code is refused now, before it is looked up.
    throttled = ask(client_at(app, "192.0.2.9"), sign, verification_request(own.short_code))
    assert (throttled.status, throttled.fault) == (429, "AUTHORISATION_THROTTLED")
    assert ask(client_at(app, "192.0.2.9"), sign, verification_request(own.token)).status == 200  # tokens still work
    other = grant(app, li_ming, verifier_id=AGENCY_CHAOYANG)
    assert (
        ask(client_at(app, "198.51.100.1"), sign, verification_request(other.short_code), AGENCY_CHAOYANG).status == 200
    )


def test_wrong_short_codes_are_throttled_per_client_address(app: Flask, sign: Signer, li_ming: GraduateAccount) -> None:
    shared = client_at(app, "203.0.113.7")  # one machine guessing with the keys of several verifiers
    for sender in (HUKOU_OFFICE, AGENCY_CHAOYANG, PRIVATE_EMPLOYER):
        assert ask(shared, sign, verification_request(UNKNOWN_CODE), sender=sender).fault == "AUTHORISATION_INVALID"
    agency_code = grant(app, li_ming, verifier_id=AGENCY_CHAOYANG).short_code
    hukou_code = grant(app, li_ming).short_code
    assert ask(shared, sign, verification_request(agency_code), AGENCY_CHAOYANG).fault == "AUTHORISATION_THROTTLED"
    # Each verifier counts one failure of its own: from its own address, each still gets through.
    assert ask(client_at(app, "198.51.100.2"), sign, verification_request(hukou_code)).status == 200


def test_right_short_codes_are_not_counted(
    app: Flask, client: FlaskClient, sign: Signer, li_ming: GraduateAccount
) -> None:
    own = grant(app, li_ming, max_uses=10)
    for _ in range(5):
        assert ask(client, sign, verification_request(own.short_code)).status == 200
