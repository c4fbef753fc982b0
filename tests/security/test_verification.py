"""The verification stage through POST /soap: accepted signatures, signature wrapping, missing parts,
timestamps and replay. Certificates and algorithms: ``test_verification_trust``; receipts:
``test_verification_receipts``.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree
from sqlalchemy import select

import gateway.security.verify as verify_module
from gateway.audit.models import AuditEntry
from gateway.pki.keystore import load_private_key
from gateway.sdk.signing import sign_envelope_bytes
from gateway.settings import Settings
from gateway.store.db import transaction
from gateway.web.app import create_app
from tests.conftest import AGENCY_CHAOYANG, UNIVERSITY, Credentials, Signer, credentials
from tests.security.variants import (
    NS,
    WSSE_NS,
    WSU_ID,
    c14n_sha256,
    development_ca,
    element_id,
    forged_body,
    fresh_client,
    header_block,
    one,
    parse,
    post,
    receipt_of,
    refusal,
    register,
    registration,
    serialise,
    sign_custom,
    stored_ids,
)

Mutation = Callable[[etree._Element], None]


@pytest.fixture
def university(settings: Settings) -> Credentials:
    return credentials(settings.keys_dir, UNIVERSITY)


# --- the manipulations of a correctly signed envelope -------------------------------------------


def body_moved_into_a_header(root: etree._Element) -> None:
    signed = one(root, "soapenv:Body")
    root.replace(signed, forged_body(signed))
    header_block(root, signed)


def second_body_after_the_signed_one(root: etree._Element) -> None:
    one(root, "soapenv:Body").addnext(forged_body(one(root, "soapenv:Body")))


def second_body_before_the_signed_one(root: etree._Element) -> None:
    one(root, "soapenv:Body").addprevious(forged_body(one(root, "soapenv:Body")))


def signed_body_copied_into_a_header_and_the_body_changed(root: etree._Element) -> None:
    body = one(root, "soapenv:Body")
    header_block(root, copy.deepcopy(body))
    one(body, "reg:DestinationRegistration/reg:DestinationCode").text = "11"


def second_signature_in_security(root: etree._Element) -> None:
    one(root, "soapenv:Header/wsse:Security").append(copy.deepcopy(one(root, "//ds:Signature")))


def second_signature_in_a_header_block(root: etree._Element) -> None:
    header_block(root, copy.deepcopy(one(root, "//ds:Signature")))


def second_signature_in_the_body_document(root: etree._Element) -> None:
    one(root, "soapenv:Body/reg:DestinationRegistration").append(copy.deepcopy(one(root, "//ds:Signature")))


def body_id_given_to_a_header_block(root: etree._Element) -> None:
    header_block(root, wsu_Id=element_id(one(root, "soapenv:Body")))


def body_id_given_unqualified_to_a_header_block(root: etree._Element) -> None:
    header_block(root, Id=element_id(one(root, "soapenv:Body")))


def routing_moved_and_forged(root: etree._Element) -> None:
    signed = one(root, "soapenv:Header/gw:Routing")
    forged = copy.deepcopy(signed)
    forged.attrib.pop(WSU_ID)
    one(forged, "gw:Recipient/gw:Participant").text = AGENCY_CHAOYANG
    signed.addprevious(forged)
    header_block(root, signed)


def routing_moved_and_forged_with_its_id(root: etree._Element) -> None:
    signed = one(root, "soapenv:Header/gw:Routing")
    forged = copy.deepcopy(signed)
    one(forged, "gw:Recipient/gw:Participant").text = AGENCY_CHAOYANG
    signed.addprevious(forged)
    header_block(root, signed)


def second_security_header_before(root: etree._Element) -> None:
    security = one(root, "soapenv:Header/wsse:Security")
    security.addprevious(etree.Element(f"{{{WSSE_NS}}}Security"))


def second_security_header_with_a_timestamp(root: etree._Element) -> None:
    second = etree.SubElement(one(root, "soapenv:Header"), f"{{{WSSE_NS}}}Security")
    timestamp = copy.deepcopy(one(root, "//wsu:Timestamp"))
    timestamp.attrib.pop(WSU_ID)
    second.append(timestamp)


def body_id_renamed(root: etree._Element) -> None:
    one(root, "soapenv:Body").set(WSU_ID, "Body-renamed")


def reference_to_a_missing_id(root: etree._Element) -> None:
    one(root, "//ds:Reference[1]").set("URI", "#no-such-id")


def body_changed(root: etree._Element) -> None:
    one(root, "soapenv:Body/reg:DestinationRegistration/reg:DestinationCode").text = "11"


# --- accepted ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key_info", "certificate_path"),
    [
        ("binary-token", "wsse:BinarySecurityToken"),
        ("x509-data", "ds:Signature/ds:KeyInfo/ds:X509Data/ds:X509Certificate"),
    ],
)
def test_signed_message_is_accepted_and_stored(
    client: FlaskClient, app: Flask, university: Credentials, key_info: str, certificate_path: str
) -> None:
    message_id = str(uuid.uuid4())
    data = sign_envelope_bytes(registration(message_id), university.key, university.certificate, key_info=key_info)  # type: ignore[arg-type]
    one(parse(data), f"soapenv:Header/wsse:Security/{certificate_path}")  # the variant is what it says
    receipt = receipt_of(client, data)
    assert receipt.findtext("gw:MessageId", namespaces=NS) == message_id
    assert receipt.findtext("gw:Status", namespaces=NS) == "accepted"
    assert stored_ids(app) == [message_id]


def test_ecdsa_p256_certificate_is_accepted(
    client: FlaskClient, app: Flask, settings: Settings, tmp_path: Path
) -> None:
    issued = development_ca(settings).issue(tmp_path, UNIVERSITY, "EC test", datetime.now(UTC), "ec")
    register(app, UNIVERSITY, issued.certificate)
    key = load_private_key(issued.key_path)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    data = sign_envelope_bytes(registration(), key, issued.certificate)
    method = one(parse(data), "//ds:SignedInfo/ds:SignatureMethod").get("Algorithm")
    assert method == "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
    receipt_of(client, data)


def test_node_soap_unqualified_ids_on_body_and_routing_are_accepted(
    client: FlaskClient, university: Credentials
) -> None:
    root = parse(registration())
    one(root, "soapenv:Body").set("Id", "node-soap-body")
    one(root, "soapenv:Header/gw:Routing").set("Id", "node-soap-routing")
    data = sign_envelope_bytes(serialise(root), university.key, university.certificate)
    signed = parse(data)
    assert one(signed, "soapenv:Body").get(WSU_ID) is None
    uris = [r.get("URI") for r in signed.iterfind(".//ds:Reference", NS)]
    assert "#node-soap-body" in uris and "#node-soap-routing" in uris
    receipt_of(client, data)


def test_unqualified_ids_everywhere_are_accepted(client: FlaskClient, university: Credentials) -> None:
    data = sign_custom(registration(), university.key, university.certificate, id_attribute="Id")
    assert parse(data).xpath("//@wsu:Id", namespaces=NS) == []
    receipt_of(client, data)


def test_signxml_signature_over_the_three_parts_is_accepted(client: FlaskClient, university: Credentials) -> None:
    receipt_of(client, sign_custom(registration(), university.key, university.certificate))


def test_routing_bound_by_a_digest_in_the_signed_timestamp_is_accepted(
    client: FlaskClient, university: Credentials
) -> None:
    data = sign_custom(
        registration(), university.key, university.certificate, parts=("Body", "Timestamp"), bind_routing=True
    )
    receipt_of(client, data)


# --- signature wrapping -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mutation", "code"),
    [
        (body_moved_into_a_header, "SIGNATURE_INVALID"),
        (signed_body_copied_into_a_header_and_the_body_changed, "SIGNATURE_INVALID"),
        # A second Body beside the first is refused earlier, as no SOAP 1.1 envelope (docs/faults.md).
        (second_body_after_the_signed_one, "SOAP_ENVELOPE_INVALID"),
        (second_body_before_the_signed_one, "SOAP_ENVELOPE_INVALID"),
        (second_signature_in_security, "SIGNATURE_INVALID"),
        (second_signature_in_a_header_block, "SIGNATURE_INVALID"),
        # The Body document is validated against its XSD before the signature, which has no slot for it.
        (second_signature_in_the_body_document, "SCHEMA_VIOLATION"),
        (body_id_given_to_a_header_block, "SIGNATURE_INVALID"),
        (body_id_given_unqualified_to_a_header_block, "SIGNATURE_INVALID"),
        (routing_moved_and_forged, "SIGNATURE_INVALID"),
        (routing_moved_and_forged_with_its_id, "SIGNATURE_INVALID"),
        (second_security_header_before, "SIGNATURE_INVALID"),
        (second_security_header_with_a_timestamp, "SIGNATURE_INVALID"),
        (body_id_renamed, "SIGNATURE_INVALID"),
        (reference_to_a_missing_id, "SIGNATURE_INVALID"),
        (body_changed, "SIGNATURE_INVALID"),
    ],
    ids=lambda value: getattr(value, "__name__", value),
)
def test_signature_wrapping_is_refused_and_nothing_stored(
    client: FlaskClient, app: Flask, sign: Signer, mutation: Mutation, code: str
) -> None:
    message_id = str(uuid.uuid4())
    data = sign(registration(message_id))
    root = parse(data)
    mutation(root)
    assert refusal(client, serialise(root)) == code
    assert stored_ids(app) == []
    receipt_of(client, data)  # the untouched original is good: the manipulation alone was refused
    assert stored_ids(app) == [message_id]


# --- missing or uncovered parts ---------------------------------------------------------------


def test_unsigned_message_is_refused_as_signature_missing(client: FlaskClient, app: Flask) -> None:
    assert refusal(client, registration()) == "SIGNATURE_MISSING"
    assert stored_ids(app) == []


def test_security_header_without_signature_is_refused_as_signature_missing(client: FlaskClient, sign: Signer) -> None:
    root = parse(sign(registration()))
    signature = one(root, "//ds:Signature")
    signature.getparent().remove(signature)  # type: ignore[union-attr]
    assert refusal(client, serialise(root)) == "SIGNATURE_MISSING"


def test_signature_without_timestamp_is_refused_as_timestamp_stale(client: FlaskClient, sign: Signer) -> None:
    root = parse(sign(registration()))
    timestamp = one(root, "//wsu:Timestamp")
    timestamp.getparent().remove(timestamp)  # type: ignore[union-attr]
    assert refusal(client, serialise(root)) == "TIMESTAMP_STALE"


@pytest.mark.parametrize("parts", [("Body", "Timestamp"), ("Body", "Routing"), ("Timestamp", "Routing")])
def test_signature_that_leaves_a_part_unsigned_is_refused(
    client: FlaskClient, university: Credentials, parts: tuple[str, ...]
) -> None:
    data = sign_custom(registration(), university.key, university.certificate, parts=parts)
    assert len(parse(data).xpath("//ds:Reference", namespaces=NS)) == 2
    assert refusal(client, data) == "SIGNATURE_INVALID"


def test_wrong_routing_digest_in_the_timestamp_is_refused(client: FlaskClient, university: Credentials) -> None:
    other = parse(registration(recipient=AGENCY_CHAOYANG))
    wrong = c14n_sha256(one(other, "soapenv:Header/gw:Routing"))
    data = sign_custom(
        registration(),
        university.key,
        university.certificate,
        parts=("Body", "Timestamp"),
        bind_routing=True,
        routing_digest=wrong,
    )
    assert refusal(client, data) == "SIGNATURE_INVALID"


def test_routing_changed_after_binding_it_in_the_timestamp_is_refused(
    client: FlaskClient, app: Flask, university: Credentials
) -> None:
    data = sign_custom(
        registration(), university.key, university.certificate, parts=("Body", "Timestamp"), bind_routing=True
    )
    root = parse(data)
    one(root, "soapenv:Header/gw:Routing/gw:Recipient/gw:Participant").text = AGENCY_CHAOYANG
    assert refusal(client, serialise(root)) == "SIGNATURE_INVALID"
    assert stored_ids(app) == []


# --- timestamps -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("created", "ttl"),
    [
        (timedelta(minutes=-10), timedelta(minutes=5)),
        (timedelta(minutes=10), timedelta(minutes=5)),
        (timedelta(minutes=-4), timedelta(minutes=1)),  # fresh enough, but expired 3 minutes ago
    ],
    ids=["created-10-minutes-ago", "created-10-minutes-ahead", "expired"],
)
def test_stale_timestamp_is_refused(
    client: FlaskClient, university: Credentials, created: timedelta, ttl: timedelta
) -> None:
    data = sign_envelope_bytes(
        registration(), university.key, university.certificate, now=datetime.now(UTC) + created, ttl=ttl
    )
    assert refusal(client, data) == "TIMESTAMP_STALE"


@pytest.mark.parametrize(
    ("created", "ttl"),
    [(timedelta(seconds=30), timedelta(minutes=5)), (timedelta(minutes=-4), timedelta(minutes=5))],
    ids=["created-30-seconds-ahead", "created-4-minutes-ago"],
)
def test_timestamp_within_the_limits_is_accepted(
    client: FlaskClient, university: Credentials, created: timedelta, ttl: timedelta
) -> None:
    data = sign_envelope_bytes(
        registration(), university.key, university.certificate, now=datetime.now(UTC) + created, ttl=ttl
    )
    receipt_of(client, data)


# --- replay -----------------------------------------------------------------------------------


def test_the_same_signed_message_twice_gets_its_original_receipt_and_is_stored_once(
    client: FlaskClient, app: Flask, sign: Signer
) -> None:
    data = sign(registration())
    first = receipt_of(client, data)
    again = receipt_of(client, data)  # a sender whose answer was lost sends again: AS4's duplicate elimination
    assert etree.tostring(again) == etree.tostring(first)  # the very receipt signed the first time
    assert len(stored_ids(app)) == 1
    assert audit_kinds(app).count("message.accepted") == 1
    assert audit_kinds(app).count("message.resent") == 1


def test_the_same_document_re_signed_gets_its_original_receipt(client: FlaskClient, app: Flask, sign: Signer) -> None:
    message_id = str(uuid.uuid4())
    first = receipt_of(client, sign(registration(message_id)))
    again = receipt_of(client, sign(registration(message_id)))  # a new Timestamp and signature, the same Body
    assert etree.tostring(again) == etree.tostring(first)
    assert stored_ids(app) == [message_id]


def test_another_document_under_a_used_message_id_is_a_duplicate(client: FlaskClient, app: Flask, sign: Signer) -> None:
    message_id = str(uuid.uuid4())
    receipt_of(client, sign(registration(message_id)))
    other = registration(message_id).replace("李明".encode(), "李敏".encode(), 1)
    assert other != registration(message_id)
    assert refusal(client, sign(other)) == "DUPLICATE_MESSAGE"
    assert stored_ids(app) == [message_id]


def test_a_resend_is_answered_alike_after_a_restart(client: FlaskClient, settings: Settings, sign: Signer) -> None:
    data = sign(registration())
    first = receipt_of(client, data)
    with fresh_client(settings) as restarted:
        assert etree.tostring(receipt_of(restarted, data)) == etree.tostring(first)


def test_comment_injected_into_the_signed_message_id_does_not_bypass_replay(
    client: FlaskClient, app: Flask, sign: Signer
) -> None:
    message_id = str(uuid.uuid4())
    data = sign(registration(message_id))
    receipt_of(client, data)
    root = parse(data)
    signed_id = one(root, "soapenv:Header/gw:Routing/gw:MessageId")
    comment = etree.Comment("")
    comment.tail = message_id[8:]
    signed_id.text = message_id[:8]
    signed_id.append(comment)  # <gw:MessageId>12345678<!---->-abcd-...</gw:MessageId>: the same canonical form
    status, body = post(client, serialise(root))
    assert stored_ids(app) == [message_id]
    # Read whole, the id is the stored one: the same message again, answered with its own receipt.
    if status == 200:
        assert body.findtext(".//gw:Receipt/gw:MessageId", namespaces=NS) == message_id
    else:
        assert body.findtext(".//gw:FaultDetail/gw:Code", namespaces=NS) == "SIGNATURE_INVALID"


def audit_kinds(app: Flask) -> list[str]:
    with transaction(app.extensions["gateway"].sessions) as session:
        return list(session.scalars(select(AuditEntry.kind).order_by(AuditEntry.leaf_index)))


@pytest.mark.parametrize("store_settings", ["postgresql"], indirect=True)
def test_the_same_message_accepted_meanwhile_is_refused_as_a_duplicate_not_an_internal_error(
    store_settings: Settings, sign: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two deliveries of one message race in two processes (two apps here, each with its own group
    # commit): this one passes the replay check, then the other is stored and committed. In one
    # process the writer runs one message's database work at a time, and on SQLite one transaction
    # writes at a time, so the race exists only between processes on PostgreSQL.
    app, other_process = create_app(store_settings), create_app(store_settings)
    data = sign(registration())
    find = verify_module.stored_message  # the replay check's look-up (its batch's, here of one message)
    other: dict[str, int] = {}

    def find_then_let_the_other_delivery_in(*args: Any) -> Any:
        found = find(*args)
        if not other:
            other["started"] = 1
            other["status"] = post(other_process.test_client(), data)[0]
        return found

    monkeypatch.setattr(verify_module, "stored_message", find_then_let_the_other_delivery_in)
    try:
        status, body = post(app.test_client(), data)
    finally:
        monkeypatch.undo()
    assert other["status"] == 200
    assert len(stored_ids(app)) == 1
    assert status == 500
    for served in (app, other_process):
        served.extensions["gateway"].engine.dispose()
    assert body.findtext(".//gw:FaultDetail/gw:Code", namespaces=NS) in ("REPLAY", "DUPLICATE_MESSAGE")


def test_an_unknown_element_in_signature_method_is_a_client_fault(client: FlaskClient, sign: Signer) -> None:
    """A ds:Signature that breaks the XMLDSig schema is SIGNATURE_INVALID, never an internal error."""
    root = parse(sign(registration()))
    method = one(root, "soapenv:Header/wsse:Security/ds:Signature/ds:SignedInfo/ds:SignatureMethod")
    etree.SubElement(method, "{urn:example:unknown}Extra")
    status, body = post(client, serialise(root))
    assert status == 500
    assert body.findtext(".//gw:FaultDetail/gw:Code", namespaces=NS) == "SIGNATURE_INVALID"
