"""The index of which graduate each accepted message is about (``message_subjects``)."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from gateway.graduates.models import MessageSubject
from gateway.privacy import IdentityHasher
from gateway.settings import Settings
from tests.auditor.helpers import GRADUATE_A, GRADUATE_B, messages, register_graduate_b, send_story
from tests.conftest import Signer


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
        "GraduateVerificationRequest",
    ):
        assert by_service[service] == {a}, service
    assert by_service["DestinationRegistration"] == {a, b}
    assert GRADUATE_A not in str(subjects) and GRADUATE_B not in str(subjects)


def test_a_verification_request_without_identity_number_is_found_by_its_verification_number(
    app: Flask, client: FlaskClient, sign: Signer, settings: Settings
) -> None:
    import re

    from tests.conftest import EDUCATION_DEPARTMENT, HUKOU_OFFICE, example
    from tests.domain.helpers import send

    send_story(client, sign)  # files the registration with verification number HY2025BJ7Q4K9M3T
    request = re.sub(
        rb"\s*<ver:IdentityNumber>[^<]*</ver:IdentityNumber>", b"", example("graduate-verification-request")
    )
    request = request.replace(b"VER-2025-000310", b"VER-2025-000311")
    code, detail = send(client, sign, request, HUKOU_OFFICE, EDUCATION_DEPARTMENT)
    assert code is None, detail
    hasher = IdentityHasher.from_file(settings.keys_dir / "secrets" / "identity-hash.key")
    latest = messages(app)[-1]
    with app.extensions["gateway"].sessions() as session:
        assert session.get(MessageSubject, latest.id).identity_hash == hasher(GRADUATE_A)  # type: ignore[union-attr]
