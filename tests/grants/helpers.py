"""Grants made through the services, and verification requests sent through POST /soap."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from lxml import etree

from gateway.graduates.models import GraduateAccount
from gateway.grants import services
from gateway.sdk.envelope import wrap
from gateway.store.db import transaction
from tests.conftest import EDUCATION_DEPARTMENT, HUKOU_OFFICE, Signer
from tests.graduates.helpers import LI_MING, Graduate, context

NS = {"gw": "urn:gradex:gateway:1", "ver": "urn:gradex:verification:1", "c": "urn:gradex:common:1"}
ALL_FACTS = ("identity_match", "education", "destination", "archive", "employment_evidence")


def grant(app: Flask, account: GraduateAccount, now: datetime | None = None, **changes: Any) -> services.IssuedGrant:
    """A grant of ``account`` to the hukou office: identity match and education, for settlement (overridable)."""
    values: dict[str, Any] = {
        "verifier_id": HUKOU_OFFICE,
        "facts": ["identity_match", "education"],
        "purpose": "settlement",
        "purpose_text": None,
        **changes,
    }
    gateway = context(app)
    with transaction(gateway.sessions) as session:
        return services.create_grant(session, gateway.grant_tokens, account, now=now or datetime.now(UTC), **values)


def verification_request(
    token: str | None,
    *,
    graduate: Graduate = LI_MING,
    facts: Sequence[str] = ("identity_match", "education"),
    purpose: str = "settlement",
    by: str = "verification",
    identity_number: str | None = None,
    request_id: str = "VER-2026-000001",
) -> bytes:
    """A ``ver:GraduateVerificationRequest`` naming ``graduate`` by name and one of their numbers."""
    number = (
        f"<ver:TransferNumber>{graduate.transfer_number}</ver:TransferNumber>"
        if by == "transfer"
        else f"<ver:VerificationNumber>{graduate.verification_number}</ver:VerificationNumber>"
    )
    identity = f"<ver:IdentityNumber>{identity_number}</ver:IdentityNumber>" if identity_number else ""
    fact_elements = "".join(f"<ver:Fact>{f}</ver:Fact>" for f in facts)
    token_element = f"<ver:AuthorisationToken>{token}</ver:AuthorisationToken>" if token is not None else ""
    return (
        '<ver:GraduateVerificationRequest xmlns:ver="urn:gradex:verification:1">'
        f"<ver:RequestId>{request_id}</ver:RequestId>"
        f"<ver:Subject><ver:Name>{graduate.name}</ver:Name>{number}{identity}</ver:Subject>"
        f"<ver:RequestedFacts>{fact_elements}</ver:RequestedFacts>"
        f"<ver:Purpose>{purpose}</ver:Purpose>"
        f"{token_element}"
        "</ver:GraduateVerificationRequest>"
    ).encode()


@dataclass(frozen=True)
class Answer:
    status: int
    message_id: str
    body: etree._Element
    fault: str | None
    text: str

    @property
    def answer(self) -> etree._Element:
        found = self.body.find(".//ver:GraduateVerificationAnswer", NS)
        assert found is not None, self.text
        return found


def ask(
    client: FlaskClient, sign: Signer, document: bytes, sender: str = HUKOU_OFFICE, message_id: str | None = None
) -> Answer:
    """Sign ``document`` as ``sender`` and post it to the education department's verification service."""
    message_id = message_id or str(uuid.uuid4())
    envelope = wrap(
        document,
        sender=sender,
        recipient=EDUCATION_DEPARTMENT,
        service="GraduateVerificationRequest",
        message_id=message_id,
    )
    response = client.post("/soap", data=sign(envelope, as_=sender), content_type="text/xml")
    body = etree.fromstring(response.data)
    code = body.findtext(".//gw:FaultDetail/gw:Code", namespaces=NS)
    text = body.findtext(".//gw:FaultDetail/gw:Message", namespaces=NS) or response.data.decode()
    return Answer(response.status_code, message_id, body, code, text)
