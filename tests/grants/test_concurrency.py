"""Uses are counted atomically: of two concurrent uses of a one-use grant, exactly one succeeds.

On SQLite and on the real PostgreSQL (``store_settings``): requests posted from two threads at
once, several rounds; and the conditional UPDATE itself, with one transaction holding the use
while the other waits for it.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from flask import Flask
from lxml import etree
from sqlalchemy import select

from gateway.errors import AuthorisationExhausted
from gateway.grants.enforce import count_use
from gateway.grants.models import Grant, GrantUse
from gateway.sdk.envelope import wrap
from gateway.settings import Settings
from gateway.store.db import transaction
from gateway.web.app import create_app
from tests.conftest import EDUCATION_DEPARTMENT, HUKOU_OFFICE, Signer
from tests.graduates.helpers import activated, context
from tests.grants.helpers import NS, grant, verification_request

ROUNDS = 4


@pytest.fixture
def store_app(store_settings: Settings) -> Iterator[Flask]:
    application = create_app(store_settings)
    application.config["TESTING"] = True
    yield application
    application.extensions["gateway"].engine.dispose()


def test_two_concurrent_requests_for_the_last_use_exactly_one_is_answered(store_app: Flask, sign: Signer) -> None:
    account = activated(store_app, store_app.test_client(), sign)
    for _ in range(ROUNDS):
        issued = grant(store_app, account)
        envelopes = [
            sign(
                wrap(
                    verification_request(issued.token),
                    sender=HUKOU_OFFICE,
                    recipient=EDUCATION_DEPARTMENT,
                    service="GraduateVerificationRequest",
                    message_id=str(uuid.uuid4()),
                ),
                as_=HUKOU_OFFICE,
            )
            for _ in range(2)
        ]
        barrier = threading.Barrier(2)
        with ThreadPoolExecutor(2) as pool:
            outcomes = sorted(pool.map(post_together, [store_app] * 2, [barrier] * 2, envelopes))
        assert outcomes == ["AUTHORISATION_EXHAUSTED", "answered"]
        with transaction(context(store_app).sessions) as session:
            assert session.get(Grant, issued.grant.id).uses == 1  # type: ignore[union-attr]
            recorded = sorted(
                (u.outcome, u.fault_code)
                for u in session.scalars(select(GrantUse).where(GrantUse.grant_id == issued.grant.id))
            )
            assert recorded == [("refused", "AUTHORISATION_EXHAUSTED"), ("used", None)]


def post_together(app: Flask, barrier: threading.Barrier, envelope: bytes) -> str:
    """Post ``envelope`` once the other thread is ready too; the fault code, or ``answered``."""
    client = app.test_client()
    barrier.wait()
    body = etree.fromstring(client.post("/soap", data=envelope, content_type="text/xml").data)
    return body.findtext(".//gw:FaultDetail/gw:Code", namespaces=NS) or "answered"


def test_the_second_use_waits_for_the_first_and_finds_nothing_left(store_app: Flask, sign: Signer) -> None:
    account = activated(store_app, store_app.test_client(), sign)
    issued = grant(store_app, account)
    sessions = context(store_app).sessions
    now = datetime.now(UTC)
    outcome: list[object] = []

    def second_use() -> None:
        try:
            with transaction(sessions) as session:
                found = session.get(Grant, issued.grant.id)
                assert found is not None
                count_use(session, found, now)
            outcome.append("counted")
        except AuthorisationExhausted as exc:
            outcome.append(exc)

    with transaction(sessions) as first:
        held = first.get(Grant, issued.grant.id)
        assert held is not None
        count_use(first, held, now)  # takes the only use; not committed yet
        racer = threading.Thread(target=second_use)
        racer.start()
        time.sleep(0.5)
        assert racer.is_alive()  # waiting for the first transaction (row lock, or SQLite's one writer)
    racer.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], AuthorisationExhausted)
    with transaction(sessions) as session:
        assert session.get(Grant, issued.grant.id).uses == 1  # type: ignore[union-attr]
