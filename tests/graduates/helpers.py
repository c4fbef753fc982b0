"""Graduates with filed registrations, made through POST /soap as the university and the department would."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Flask
from flask.testing import FlaskClient

from gateway.graduates import accounts
from gateway.graduates.models import GraduateAccount
from gateway.store.db import transaction
from gateway.web.context import Gateway
from tests.conftest import EDUCATION_DEPARTMENT, UNIVERSITY, Signer, example
from tests.domain.helpers import replace_text, send

PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Graduate:
    identity_number: str
    name: str
    registration_id: str
    transfer_number: str
    verification_number: str


LI_MING = Graduate("11010520030315041X", "李明", "REG-2025-000123", "ZD11000020250001234", "HY2025BJ7Q4K9M3T")
WANG_HONG = Graduate("110108200204150026", "王小红", "REG-2025-000456", "ZD11000020250005678", "HY2025BJ2X8P5R6W")


def registration_document(graduate: Graduate) -> bytes:
    document = replace_text(example("destination-registration"), "reg:RegistrationId", graduate.registration_id)
    document = replace_text(document, "c:IdentityNumber", graduate.identity_number)
    return replace_text(document, "c:Name", graduate.name)  # the graduate's name comes first


def filing_document(graduate: Graduate) -> bytes:
    document = replace_text(example("registration-filed"), "reg:RegistrationId", graduate.registration_id)
    document = replace_text(document, "reg:IdentityNumber", graduate.identity_number)
    document = replace_text(document, "reg:TransferNumber", graduate.transfer_number)
    return replace_text(document, "reg:VerificationNumber", graduate.verification_number)


def file_registration(client: FlaskClient, sign: Signer, graduate: Graduate) -> None:
    """The university registers the graduate's destination and the department files it."""
    for document, sender, recipient in (
        (registration_document(graduate), UNIVERSITY, EDUCATION_DEPARTMENT),
        (filing_document(graduate), EDUCATION_DEPARTMENT, UNIVERSITY),
    ):
        code, detail = send(client, sign, document, sender, recipient)
        assert code is None, f"{code}: {detail}"


def context(app: Flask) -> Gateway:
    found: Gateway = app.extensions["gateway"]
    return found


def activated(app: Flask, client: FlaskClient, sign: Signer, graduate: Graduate = LI_MING) -> GraduateAccount:
    """The graduate's registration filed and their account activated (with :data:`PASSWORD`)."""
    file_registration(client, sign, graduate)
    gateway = context(app)
    with transaction(gateway.sessions) as session:
        return accounts.activate(
            session,
            gateway.hasher,
            graduate.identity_number,
            graduate.name,
            graduate.verification_number,
            PASSWORD,
            datetime.now(UTC),
        )
