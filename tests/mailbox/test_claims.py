"""The mailbox's claims in the database itself (``gateway.delivery.mailbox``), beside /soap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import text

from gateway.delivery import mailbox
from gateway.delivery.policy import RetryPolicy
from tests.conftest import EDUCATION_DEPARTMENT, Signer
from tests.mailbox.helpers import SENDER, deliveries, send_to_pull_recipient


@pytest.mark.parametrize("store_settings", ["postgresql"], indirect=True)
def test_a_fetch_skips_what_another_fetch_holds_without_waiting(store_app: Flask, sign: Signer) -> None:
    client = store_app.test_client()
    first, second = send_to_pull_recipient(client, sign), send_to_pull_recipient(client, sign)
    sessions = store_app.extensions["gateway"].sessions
    now, policy = datetime.now(UTC), RetryPolicy()
    with sessions() as holder, holder.begin():
        held = mailbox.fetch(holder, EDUCATION_DEPARTMENT, 1, now, policy)
        assert [d.message.message_id for d in held] == [first]
        with sessions() as other, other.begin():
            other.execute(text("SET LOCAL lock_timeout = '5s'"))  # waiting would fail the test, not hang it
            taken = mailbox.fetch(other, EDUCATION_DEPARTMENT, 2, now, policy)
            assert [d.message.message_id for d in taken] == [second]
    assert [(d.status, d.attempts) for d in deliveries(store_app)] == [("in_delivery", 1), ("in_delivery", 1)]


def test_only_a_claim_older_than_the_visibility_timeout_is_taken_again(store_app: Flask, sign: Signer) -> None:
    client = store_app.test_client()
    message_id = send_to_pull_recipient(client, sign)
    sessions = store_app.extensions["gateway"].sessions
    policy = RetryPolicy(visibility_seconds=60)
    fetched_at = datetime.now(UTC)
    with sessions() as session, session.begin():
        assert len(mailbox.fetch(session, EDUCATION_DEPARTMENT, 10, fetched_at, policy)) == 1
    with sessions() as session, session.begin():
        assert mailbox.fetch(session, EDUCATION_DEPARTMENT, 10, fetched_at + timedelta(seconds=60), policy) == []
        [again] = mailbox.fetch(session, EDUCATION_DEPARTMENT, 10, fetched_at + timedelta(seconds=61), policy)
        assert (again.attempts, again.claimed_at) == (2, fetched_at + timedelta(seconds=61))
    later = fetched_at + timedelta(seconds=62)
    ref = mailbox.MessageRef(message_id, SENDER)
    with sessions() as session, session.begin():
        outcomes = mailbox.acknowledge(session, EDUCATION_DEPARTMENT, [ref, ref], later)
    assert outcomes == [mailbox.Acknowledgement.ACKNOWLEDGED, mailbox.Acknowledgement.ALREADY_ACKNOWLEDGED]
    [row] = deliveries(store_app)
    assert (row.status, row.delivered_at) == ("delivered", later)
