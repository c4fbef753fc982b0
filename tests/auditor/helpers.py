"""Real accepted messages for the auditor tests: the domain's story, and a second graduate's registration."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from gateway.messages.models import Message
from tests.conftest import EDUCATION_DEPARTMENT, UNIVERSITY, Signer, example
from tests.domain.helpers import replace_text, send
from tests.domain.test_season import STORY, with_a_grant

GRADUATE_A = "11010520030315041X"  # the graduate of every example document
GRADUATE_B = "11010519491231002X"  # another graduate, with a registration of her own
NOBODY = "110105200001010016"  # a valid identity number the gateway has never seen


def send_story(client: FlaskClient, sign: Signer) -> None:
    """Every example, in the order of the domain's story: all about graduate A."""
    for service, document, sender, recipient in STORY:
        if service == "DirectoryEntryUpdate":  # about the agency's own entry, not about a graduate
            continue
        if service == "GraduateVerificationRequest":  # made with the graduate's grant (issue 6)
            document = with_a_grant(client.application, document)
        code, detail = send(client, sign, document, sender, recipient, service)
        assert code is None, (service, code, detail)


def register_graduate_b(client: FlaskClient, sign: Signer) -> None:
    document = replace_text(example("destination-registration"), "c:IdentityNumber", GRADUATE_B)
    document = replace_text(document, "reg:RegistrationId", "REG-2025-000999")
    code, detail = send(client, sign, document, UNIVERSITY, EDUCATION_DEPARTMENT, "DestinationRegistration")
    assert code is None, detail


def messages(app: Flask) -> list[Message]:
    with app.extensions["gateway"].sessions() as session:
        return list(session.scalars(select(Message).order_by(Message.id)))
