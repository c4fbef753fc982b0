"""Activating an account against a filed registration, and signing in."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from gateway.audit.entries import decode
from gateway.audit.models import AuditEntry
from gateway.errors import ActivationRefused, SignInRefused
from gateway.graduates import accounts, services
from gateway.graduates.models import GraduateAccount
from gateway.registrations.models import Registration
from gateway.store.db import transaction
from tests.conftest import Signer
from tests.domain.helpers import send
from tests.graduates.helpers import (
    LI_MING,
    PASSWORD,
    WANG_HONG,
    activated,
    context,
    file_registration,
    registration_document,
)

NOW = datetime(2026, 7, 1, tzinfo=UTC)


def activate(app: Flask, **changes: str) -> GraduateAccount:
    values = {
        "identity_number": LI_MING.identity_number,
        "name": LI_MING.name,
        "verification_number": LI_MING.verification_number,
        "password": PASSWORD,
        **changes,
    }
    gateway = context(app)
    with transaction(gateway.sessions) as session:
        return services.activate(session, gateway.hasher, now=NOW, **values)


def refusal(app: Flask, **changes: str) -> ActivationRefused:
    with pytest.raises(ActivationRefused) as caught:
        activate(app, **changes)
    return caught.value


def test_activation_binds_the_account_to_the_filed_registration(app: Flask, client: FlaskClient, sign: Signer) -> None:
    file_registration(client, sign, LI_MING)
    account = activate(app)
    gateway = context(app)
    with transaction(gateway.sessions) as session:
        stored = session.get(GraduateAccount, account.id)
        assert stored is not None
        registration = session.get(Registration, stored.registration_pk)
        assert registration is not None and registration.registration_id == LI_MING.registration_id
        assert stored.identity_hash == gateway.hasher(LI_MING.identity_number) == registration.identity_hash
        assert stored.password_hash.startswith("$argon2id$")
        assert LI_MING.identity_number not in stored.password_hash + stored.identity_hash
        [entry] = session.scalars(select(AuditEntry).where(AuditEntry.kind == "graduate.activated"))
        assert LI_MING.identity_number.encode() not in entry.entry
        assert decode(entry.entry)["account"] == account.id


def test_a_mismatch_in_any_detail_gets_one_and_the_same_refusal(app: Flask, client: FlaskClient, sign: Signer) -> None:
    file_registration(client, sign, LI_MING)
    wrong = [
        {"identity_number": WANG_HONG.identity_number},
        {"name": "李敏"},
        {"verification_number": WANG_HONG.verification_number},
    ]
    refusals = [refusal(app, **change) for change in wrong]
    assert {(r.code, r.message) for r in refusals} == {("no_match", accounts.NO_MATCH)}


def test_an_unfiled_registration_cannot_be_activated(app: Flask, client: FlaskClient, sign: Signer) -> None:
    from tests.conftest import EDUCATION_DEPARTMENT, UNIVERSITY

    code, _ = send(client, sign, registration_document(LI_MING), UNIVERSITY, EDUCATION_DEPARTMENT)
    assert code is None
    assert refusal(app).code == "no_match"


def test_refusals_for_a_bad_number_a_weak_password_and_a_second_activation(
    app: Flask, client: FlaskClient, sign: Signer
) -> None:
    file_registration(client, sign, LI_MING)
    assert refusal(app, identity_number="110105200303150410").code == "identity_number_invalid"
    assert refusal(app, password="short").code == "password_too_weak"
    assert refusal(app, password=f"x{LI_MING.identity_number}").code == "password_too_weak"
    assert refusal(app, password="aaaaaaaaaaaa").code == "password_too_weak"
    activate(app)
    assert refusal(app).code == "already_activated"


def test_sign_in_with_the_right_password_only(app: Flask, client: FlaskClient, sign: Signer) -> None:
    account = activated(app, client, sign)
    gateway = context(app)
    with transaction(gateway.sessions) as session:
        signed_in = services.authenticate(session, gateway.hasher, LI_MING.identity_number.lower(), PASSWORD, NOW)
        assert signed_in.id == account.id and signed_in.last_sign_in_at == NOW
    failures = [
        (LI_MING.identity_number, PASSWORD + "!"),
        (WANG_HONG.identity_number, PASSWORD),  # no account
        ("not a number", PASSWORD),
    ]
    messages = set()
    for number, password in failures:
        with transaction(gateway.sessions) as session, pytest.raises(SignInRefused) as caught:
            services.authenticate(session, gateway.hasher, number, password, NOW)
        messages.add((caught.value.code, caught.value.message))
    assert messages == {("sign_in_failed", accounts.SIGN_IN_FAILED)}
    with transaction(gateway.sessions) as session:
        assert services.account_by_id(session, account.id) is not None
