"""The index of which graduate each accepted message is about (``message_subjects``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from gateway.auditor.search import Criteria, search
from gateway.graduates.models import GraduateAccount, MessageSubject
from gateway.grants import services as grants
from gateway.privacy import IdentityHasher
from gateway.settings import Settings
from gateway.store.db import transaction
from tests.auditor.helpers import GRADUATE_A, GRADUATE_B, messages, register_graduate_b, send_story
from tests.conftest import EDUCATION_DEPARTMENT, HUKOU_OFFICE, Signer, example
from tests.domain.helpers import replace_text, send


def test_every_message_of_the_story_is_indexed_under_its_graduate(
    app: Flask, client: FlaskClient, sign: Signer, settings: Settings
) -> None:
    send_story(client, sign)
    register_graduate_b(client, sign)
    hasher = IdentityHasher.from_file(settings.keys_dir / "secrets" / "identity-hash.key")
    with app.extensions["gateway"].sessions() as session:
        subjects = dict(session.execute(select(MessageSubject.message_pk, MessageSubject.identity_hash)).all())
    by_service: dict[str, set[str]] = {}
    for message in messages(app):
        by_service.setdefault(message.service, set()).add(subjects.get(message.id, "none"))
    a, b = hasher(GRADUATE_A), hasher(GRADUATE_B)
    # Documents that name the graduate, and those that do not: an agreement's review and its
    # cancellation are found through the agreement the offer recorded.
    for service in (
        "AgreementOffer",
        "AgreementResponse",
        "AgreementReview",
        "AgreementCancellation",
        "AgreementCancellationReview",
        "RegistrationRejected",
        "RegistrationFiled",
        "ArchiveTransferRequest",
        "ArchiveTransferManifest",
        "ArchiveReceipt",
    ):
        assert by_service[service] == {a}, service
    # A verification request is recorded as a use of the graduate's grant instead (see the search).
    assert by_service["GraduateVerificationRequest"] == {"none"}
    assert by_service["DestinationRegistration"] == {a, b}
    assert GRADUATE_A not in str(subjects) and GRADUATE_B not in str(subjects)


def test_a_verification_request_without_identity_number_is_found_through_the_grant_it_used(
    app: Flask, client: FlaskClient, sign: Signer, settings: Settings
) -> None:
    send_story(client, sign)  # files the registration, activates graduate A's account, verifies once with a grant
    gateway = app.extensions["gateway"]
    with transaction(gateway.sessions) as session:
        account = session.scalar(select(GraduateAccount))
        assert account is not None
        issued = grants.create_grant(
            session,
            gateway.grant_tokens,
            account,
            HUKOU_OFFICE,
            ["identity_match", "education", "destination"],
            "settlement",
            None,
            datetime.now(UTC),
        )
    request = re.sub(
        rb"\s*<ver:IdentityNumber>[^<]*</ver:IdentityNumber>", b"", example("graduate-verification-request")
    )
    request = replace_text(
        request.replace(b"VER-2025-000310", b"VER-2025-000311"), "ver:AuthorisationToken", issued.token
    )
    code, detail = send(client, sign, request, HUKOU_OFFICE, EDUCATION_DEPARTMENT)
    assert code is None, detail
    register_graduate_b(client, sign)
    hasher = IdentityHasher.from_file(settings.keys_dir / "secrets" / "identity-hash.key")
    with gateway.sessions() as session:
        found_a = search(session, Criteria(graduate=hasher(GRADUATE_A), service="GraduateVerificationRequest"))
        found_b = search(session, Criteria(graduate=hasher(GRADUATE_B), service="GraduateVerificationRequest"))
    assert found_a.total == 2  # the story's request and this one, neither naming the graduate's number here
    assert found_b.total == 0
