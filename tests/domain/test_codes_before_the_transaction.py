"""The document's codes are checked with the CPU checks, before any transaction (``CheckCodes``):
a document with a bad code costs the group commit's writer nothing."""

from __future__ import annotations

import uuid

from gateway.sdk.envelope import wrap
from gateway.settings import Settings
from gateway.web.app import create_app
from tests.conftest import EDUCATION_DEPARTMENT, UNIVERSITY, Signer, example

VALID = b"11010520030315041X"
BAD_CHECK_CHARACTER = b"110105200303150411"


def registration(sign: Signer, identity: bytes) -> bytes:
    document = example("destination-registration")
    assert VALID in document
    envelope = wrap(
        document.replace(VALID, identity),
        sender=UNIVERSITY,
        recipient=EDUCATION_DEPARTMENT,
        service="DestinationRegistration",
        message_id=str(uuid.uuid4()),
    )
    return sign(envelope)


def test_a_bad_code_is_refused_before_the_writer_runs(settings: Settings, sign: Signer) -> None:
    app = create_app(settings)
    writer = app.extensions["gateway"].pipeline.writer
    client = app.test_client()
    refused = client.post("/soap", data=registration(sign, BAD_CHECK_CHARACTER), content_type="text/xml")
    assert refused.status_code == 500 and b"CODE_INVALID" in refused.data
    assert b"IdentityNumber" in refused.data and BAD_CHECK_CHARACTER not in refused.data  # never echoed
    assert writer.batches == 0  # no transaction of the group commit was begun for it
    accepted = client.post("/soap", data=registration(sign, VALID), content_type="text/xml")
    assert accepted.status_code == 200
    assert writer.batches == 1
    app.extensions["gateway"].engine.dispose()
