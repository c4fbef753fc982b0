"""Agreement steps in one group-commit batch, on SQLite and PostgreSQL: the second of two conflicting
steps meets the first's state in the batch's transaction and is refused alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from gateway.agreements.machine import china_day
from gateway.agreements.models import Agreement
from gateway.store.db import transaction
from tests.agreements.test_races import document
from tests.conftest import PRIVATE_EMPLOYER, UNIVERSITY, Signer
from tests.intake.test_group_commit import app, envelope, post, send_in_one_batch  # noqa: F401 (app: the fixture)


@pytest.mark.parametrize("store_settings", ["sqlite", "postgresql"], indirect=True)
def test_an_approval_and_a_rejection_in_one_batch_step_the_agreement_once(app: Flask, sign: Signer) -> None:  # noqa: F811
    today = china_day(datetime.now(UTC))
    period = {"ValidFrom": str(today - timedelta(days=1)), "ValidUntil": str(today + timedelta(days=30))}
    offer = document("agreement-offer", "AGR-BATCH-1", **period)
    assert post(app, envelope(sign, offer, PRIVATE_EMPLOYER, UNIVERSITY, "AgreementOffer"))[0] == 200
    response = document("agreement-response", "AGR-BATCH-1")
    assert post(app, envelope(sign, response, UNIVERSITY, PRIVATE_EMPLOYER, "AgreementResponse"))[0] == 200
    approve = document("agreement-review", "AGR-BATCH-1")
    reject = document("agreement-review", "AGR-BATCH-1", Decision="reject")
    answers = send_in_one_batch(
        app, [envelope(sign, review, UNIVERSITY, PRIVATE_EMPLOYER, "AgreementReview") for review in (approve, reject)]
    )
    statuses = [status for status, _ in answers]
    assert sorted(statuses) == [200, 500], answers
    refused = next(body for status, body in answers if status != 200)
    assert b"AGREEMENT_OUT_OF_ORDER" in refused
    with transaction(app.extensions["gateway"].sessions) as session:
        state = session.scalars(select(Agreement.state).where(Agreement.agreement_id == "AGR-BATCH-1")).one()
    assert state == ("signed" if statuses[0] == 200 else "review_rejected")
