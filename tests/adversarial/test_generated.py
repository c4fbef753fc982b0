"""Hostile inputs made in code, through POST /soap: too large to keep as files, or in need of fresh
signatures and timestamps. Each must be refused with its own fault code, fast, audited, storing nothing.

The classes: parser limits (attributes, namespaces, elements, text and attribute lengths, size,
media type), signature wrapping, algorithms (SHA-1 included), certificates (untrusted, expired,
revoked, of another sender, too weak), timestamps, replay, malformed signature values, processing
instructions inside signed values, and forged or altered grant tokens.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree

from gateway.pki.keystore import load_private_key
from gateway.sdk.signing import sign_envelope_bytes
from gateway.settings import Settings
from tests.adversarial.hostile import Outcome, post, refusals, stored_message_ids
from tests.conftest import EDUCATION_DEPARTMENT, UNIVERSITY, Credentials, Signer, credentials
from tests.mailbox.helpers import fetch_request, plumbing_envelope
from tests.security import test_verification as wrapping
from tests.security.variants import (
    NS,
    WSU_NS,
    development_ca,
    fresh_client,
    make_certificate,
    one,
    parse,
    register,
    registration,
    serialise,
    sign_custom,
    sign_with_zeep,
    weak_key,
    write_crl,
)

SECONDS = 3.0  # each takes milliseconds to a few hundred here; room for a loaded machine
HEADER_END = b"</soapenv:Header>"


@dataclass
class Kit:
    settings: Settings
    app: Flask
    client: FlaskClient
    sign: Signer
    university: Credentials
    folder: Path


@pytest.fixture
def kit(settings: Settings, app: Flask, client: FlaskClient, sign: Signer, tmp_path: Path) -> Kit:
    return Kit(settings, app, client, sign, credentials(settings.keys_dir, UNIVERSITY), tmp_path)


def in_header(block: bytes) -> bytes:
    """An unsigned, otherwise valid registration with ``block`` as an extra SOAP header block."""
    return registration().replace(HEADER_END, block + HEADER_END, 1)


def mutated(kit: Kit, change: Callable[[etree._Element], None], data: bytes | None = None) -> bytes:
    root = parse(data or kit.sign(registration()))
    change(root)
    return serialise(root)


def set_text(path: str, text: str | None) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        one(root, path).text = text

    return change


def set_algorithm(path: str, uri: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        for node in root.xpath(path, namespaces=NS):
            assert isinstance(node, etree._Element)
            node.set("Algorithm", uri)

    return change


def with_processing_instruction(kit: Kit, path: str, at: int) -> bytes:
    """Signed correctly, with a processing instruction inside a value: exclusive C14N signs PIs."""
    root = parse(registration())
    node = one(root, path)
    text = node.text or ""
    node.text = text[:at]
    instruction = etree.ProcessingInstruction("split")
    instruction.tail = text[at:]
    node.append(instruction)
    return sign_custom(serialise(root), kit.university.key, kit.university.certificate)


def timestamp_child(root: etree._Element) -> None:
    created = one(root, "//wsu:Timestamp/wsu:Created")
    child = etree.SubElement(created, f"{{{WSU_NS}}}Extra")
    child.tail = "Z"


def references(count: int) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        reference = one(root, "//ds:SignedInfo/ds:Reference[1]")
        for _ in range(count):
            reference.addnext(copy.deepcopy(reference))

    return change


def three_transforms(root: etree._Element) -> None:
    transforms = one(root, "//ds:SignedInfo/ds:Reference[1]/ds:Transforms")
    for _ in range(2):
        transforms.append(copy.deepcopy(transforms[0]))


def body_id_twice(root: etree._Element) -> None:
    body_id = one(root, "soapenv:Body").get(f"{{{WSU_NS}}}Id", "")
    one(root, "//wsu:Timestamp/wsu:Created").set(f"{{{WSU_NS}}}Id", body_id)


def certificate_signed(kit: Kit, kind: str) -> bytes:
    now = datetime.now(UTC)
    if kind in ("expired", "not-yet-valid"):
        issued = development_ca(kit.settings).issue(
            kit.folder, UNIVERSITY, kind, now + (timedelta(days=-800) if kind == "expired" else timedelta(days=1))
        )
        register(kit.app, UNIVERSITY, issued.certificate)
        return sign_envelope_bytes(registration(), load_private_key(issued.key_path), issued.certificate)
    if kind == "self-signed":
        certificate = make_certificate(kit.university.key)
    elif kind == "no-signing-usage":
        ca = development_ca(kit.settings)
        certificate = make_certificate(kit.university.key, ca.key, ca.certificate.subject, may_sign=False)
    else:  # a weak key from the development CA
        key = weak_key(kind)
        ca = development_ca(kit.settings)
        certificate = make_certificate(key, ca.key, ca.certificate.subject)
        register(kit.app, UNIVERSITY, certificate)
        return sign_envelope_bytes(registration(), key, certificate)
    register(kit.app, UNIVERSITY, certificate)
    return sign_envelope_bytes(registration(), kit.university.key, certificate)


def signed_at(kit: Kit, shift: timedelta) -> bytes:
    return sign_envelope_bytes(
        registration(), kit.university.key, kit.university.certificate, now=datetime.now(UTC) + shift
    )


def sent_twice(kit: Kit, same_signature: bool) -> bytes:
    """A request the gateway answers itself, replayed; or another document under a used message id.

    (A business document sent again unchanged is answered with its original receipt and stored
    once: tests/security/test_verification.py.)"""
    if same_signature:
        first = plumbing_envelope(kit.sign, fetch_request(1), EDUCATION_DEPARTMENT)
        assert post(kit.client, first).status == 200
        return first
    message_id = str(uuid.uuid4())
    assert post(kit.client, kit.sign(registration(message_id))).status == 200
    return kit.sign(registration(message_id).replace("李明".encode(), "李敏".encode(), 1))


def other_senders_certificate(kit: Kit) -> bytes:
    other = credentials(kit.settings.keys_dir, EDUCATION_DEPARTMENT)
    return sign_envelope_bytes(registration(sender=UNIVERSITY), other.key, other.certificate)


RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"
INCLUSIVE = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
HMAC_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256"
XSLT = "http://www.w3.org/TR/1999/REC-xslt-19991116"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
SIGNED_INFO = "//ds:Signature/ds:SignedInfo"

ATTACKS: dict[str, tuple[str, Callable[[Kit], bytes]]] = {
    # --- bounds of the parser (item 1) ---
    "40000-attributes-on-an-unsigned-header": (
        "XML_TOO_MANY_ATTRIBUTES",
        lambda kit: in_header(b"<x:H xmlns:x='urn:x' " + b" ".join(b'a%d="1"' % i for i in range(40_000)) + b"/>"),
    ),
    "10000-namespace-declarations": (
        "XML_TOO_MANY_NAMESPACES",
        lambda kit: in_header(
            b"<x:H xmlns:x='urn:x' " + b" ".join(b'xmlns:n%d="urn:n%d"' % (i, i) for i in range(10_000)) + b"/>"
        ),
    ),
    "namespaces-in-scope-over-nested-elements-utf16": (
        "XML_TOO_MANY_NAMESPACES",
        lambda kit: (
            in_header(
                b"".join(b'<x:H%d xmlns:x="urn:x" xmlns:a%d="urn:a" xmlns:b%d="urn:b">' % (i, i, i) for i in range(30))
                + b"".join(b"</x:H%d>" % i for i in reversed(range(30)))
            )
            .decode()
            .replace("<?xml version='1.0' encoding='UTF-8'?>", "<?xml version='1.0' encoding='UTF-16'?>")
            .encode("utf-16")
        ),
    ),
    "10001-elements": (
        "XML_TOO_MANY_ELEMENTS",
        lambda kit: in_header(b"<x:H xmlns:x='urn:x'>" + b"<x:e/>" * 10_001 + b"</x:H>"),
    ),
    "2.5-million-elements-in-10-MB": (
        "XML_TOO_MANY_ELEMENTS",
        lambda kit: in_header(b"<x:H xmlns:x='urn:x'>" + b"<e/>" * 2_500_000 + b"</x:H>"),
    ),
    "100000-character-text": (
        "XML_TEXT_TOO_LONG",
        lambda kit: in_header(b"<x:H xmlns:x='urn:x'>" + b"y" * 100_000 + b"</x:H>"),
    ),
    "20000-character-attribute": (
        "XML_ATTRIBUTE_TOO_LONG",
        lambda kit: in_header(b"<x:H xmlns:x='urn:x' a='" + b"y" * 20_000 + b"'/>"),
    ),
    "quadratic-blowup-entity": (
        "XML_ENTITY_FORBIDDEN",
        lambda kit: b"<!DOCTYPE r [<!ENTITY a '" + b"x" * 50_000 + b"'>]><r>" + b"&a;" * 50_000 + b"</r>",
    ),
    "doctype-after-64-KiB-of-white-space": (
        "XML_DTD_FORBIDDEN",
        lambda kit: b" " * 70_000 + b"<!DOCTYPE r SYSTEM 'file:///dev/zero'><r/>",
    ),
    # --- signature wrapping ---
    **{
        f"xsw-{mutation.__name__}": (code, lambda kit, m=mutation: mutated(kit, m))
        for mutation, code in [
            (wrapping.body_moved_into_a_header, "SIGNATURE_INVALID"),
            (wrapping.signed_body_copied_into_a_header_and_the_body_changed, "SIGNATURE_INVALID"),
            (wrapping.second_body_after_the_signed_one, "SOAP_ENVELOPE_INVALID"),
            (wrapping.second_signature_in_security, "SIGNATURE_INVALID"),
            (wrapping.second_signature_in_a_header_block, "SIGNATURE_INVALID"),
            (wrapping.body_id_given_to_a_header_block, "SIGNATURE_INVALID"),
            (wrapping.body_id_given_unqualified_to_a_header_block, "SIGNATURE_INVALID"),
            (wrapping.routing_moved_and_forged, "SIGNATURE_INVALID"),
            (wrapping.routing_moved_and_forged_with_its_id, "SIGNATURE_INVALID"),
            (wrapping.second_security_header_with_a_timestamp, "SIGNATURE_INVALID"),
            (wrapping.reference_to_a_missing_id, "SIGNATURE_INVALID"),
            (wrapping.body_changed, "SIGNATURE_INVALID"),
            (body_id_twice, "SIGNATURE_INVALID"),
        ]
    },
    # --- algorithms ---
    "rsa-sha1-signature-method": (
        "ALGORITHM_NOT_ALLOWED",
        lambda kit: mutated(kit, set_algorithm(f"{SIGNED_INFO}/ds:SignatureMethod", RSA_SHA1)),
    ),
    "sha1-digests": (
        "ALGORITHM_NOT_ALLOWED",
        lambda kit: mutated(kit, set_algorithm(f"{SIGNED_INFO}/ds:Reference/ds:DigestMethod", SHA1)),
    ),
    "zeep-default-sha1-signature": (
        "ALGORITHM_NOT_ALLOWED",
        lambda kit: sign_with_zeep(registration(), kit.settings.keys_dir / "participants" / UNIVERSITY),
    ),
    "inclusive-c14n": (
        "ALGORITHM_NOT_ALLOWED",
        lambda kit: mutated(kit, set_algorithm(f"{SIGNED_INFO}/ds:CanonicalizationMethod", INCLUSIVE)),
    ),
    "hmac-signature-method": (
        "ALGORITHM_NOT_ALLOWED",
        lambda kit: mutated(kit, set_algorithm(f"{SIGNED_INFO}/ds:SignatureMethod", HMAC_SHA256)),
    ),
    "xslt-transform": (
        "ALGORITHM_NOT_ALLOWED",
        lambda kit: mutated(kit, set_algorithm(f"{SIGNED_INFO}/ds:Reference/ds:Transforms/ds:Transform", XSLT)),
    ),
    "enveloped-signature-transform": (
        "ALGORITHM_NOT_ALLOWED",
        lambda kit: mutated(kit, set_algorithm(f"{SIGNED_INFO}/ds:Reference/ds:Transforms/ds:Transform", ENVELOPED)),
    ),
    "rsa-1024-key": ("ALGORITHM_NOT_ALLOWED", lambda kit: certificate_signed(kit, "rsa-1024")),
    "ec-p521-key": ("ALGORITHM_NOT_ALLOWED", lambda kit: certificate_signed(kit, "ec-p521")),
    # --- certificates ---
    "self-signed-certificate": ("CERT_UNTRUSTED", lambda kit: certificate_signed(kit, "self-signed")),
    "certificate-without-signing-usage": ("CERT_UNTRUSTED", lambda kit: certificate_signed(kit, "no-signing-usage")),
    "expired-certificate": ("CERT_EXPIRED", lambda kit: certificate_signed(kit, "expired")),
    "not-yet-valid-certificate": ("CERT_EXPIRED", lambda kit: certificate_signed(kit, "not-yet-valid")),
    "certificate-of-another-sender": ("CERT_NOT_REGISTERED", other_senders_certificate),
    # --- timestamps and replay ---
    "timestamp-ten-minutes-old": ("TIMESTAMP_STALE", lambda kit: signed_at(kit, timedelta(minutes=-10))),
    "timestamp-in-the-future": ("TIMESTAMP_STALE", lambda kit: signed_at(kit, timedelta(minutes=10))),
    "timestamp-value-split-by-an-element": ("TIMESTAMP_STALE", lambda kit: mutated(kit, timestamp_child)),
    "replayed-message": ("REPLAY", lambda kit: sent_twice(kit, same_signature=True)),
    "message-id-reused": ("DUPLICATE_MESSAGE", lambda kit: sent_twice(kit, same_signature=False)),
    # --- malformed signature values (INTERNAL_ERROR before) ---
    "empty-signature-value": ("SIGNATURE_INVALID", lambda kit: mutated(kit, set_text("//ds:SignatureValue", None))),
    "signature-value-not-base64": (
        "SIGNATURE_INVALID",
        lambda kit: mutated(kit, set_text("//ds:SignatureValue", "abc")),
    ),
    # Found by the fuzzer: a non-ASCII character in a DigestValue was an INTERNAL_ERROR.
    "digest-value-not-ascii": (
        "SIGNATURE_INVALID",
        lambda kit: mutated(kit, set_text("//ds:Reference[1]/ds:DigestValue", "ÿÿÿÿ")),
    ),
    "empty-digest-value": (
        "SIGNATURE_INVALID",
        lambda kit: mutated(kit, set_text("//ds:Reference[1]/ds:DigestValue", "")),
    ),
    "17-references": ("SIGNATURE_INVALID", lambda kit: mutated(kit, references(14))),
    "three-transforms": ("SIGNATURE_INVALID", lambda kit: mutated(kit, three_transforms)),
    # --- processing instructions inside signed values (item 6) ---
    "pi-before-the-signed-message-id": (
        "XML_PI_FORBIDDEN",
        lambda kit: with_processing_instruction(kit, "//gw:MessageId", 0),
    ),
    "pi-inside-the-signed-identity-number": (
        "XML_PI_FORBIDDEN",
        lambda kit: with_processing_instruction(kit, "//reg:Graduate/*[local-name()='IdentityNumber']", 6),
    ),
    "pi-splitting-the-signed-created-at": (
        "XML_PI_FORBIDDEN",
        lambda kit: with_processing_instruction(kit, "//gw:CreatedAt", 10),
    ),
}


def check_refused(kit: Kit, data: bytes, code: str) -> Outcome:
    before = stored_message_ids(kit.app)
    outcome = post(kit.client, data)
    assert (outcome.status, outcome.code) == (500, code), outcome.text[:2000]
    assert outcome.faultcode == "soapenv:Client"
    assert outcome.seconds < SECONDS
    assert stored_message_ids(kit.app) == before
    assert refusals(kit.app)[-1]["code"] == code
    return outcome


@pytest.mark.parametrize("name", ATTACKS)
def test_each_generated_attack_is_refused_with_its_code(kit: Kit, name: str) -> None:
    code, build = ATTACKS[name]
    check_refused(kit, build(kit), code)


def test_processing_instructions_no_longer_change_what_is_stored(kit: Kit) -> None:
    """Both examples of item 6: a MessageId stored as "" and an identity number filed under a prefix."""
    for path, at in (("//gw:MessageId", 0), ("//reg:Graduate/*[local-name()='IdentityNumber']", 6)):
        check_refused(kit, with_processing_instruction(kit, path, at), "XML_PI_FORBIDDEN")
    assert stored_message_ids(kit.app) == []


def test_a_revoked_certificate_is_refused(settings: Settings) -> None:
    university = credentials(settings.keys_dir, UNIVERSITY)
    write_crl(settings, [university.certificate.serial_number])
    with fresh_client(settings) as client:  # the CRL is read when the gateway starts
        outcome = post(client, sign_envelope_bytes(registration(), university.key, university.certificate))
    assert (outcome.status, outcome.code) == (500, "CERT_REVOKED")


def test_oversized_and_mistyped_bodies_get_their_http_status(kit: Kit) -> None:
    limit = kit.settings.max_message_bytes
    too_large = post(kit.client, b"<a>" + b"x" * limit + b"</a>")
    assert (too_large.status, too_large.code) == (413, "PAYLOAD_TOO_LARGE")
    mistyped = post(kit.client, registration(), content_type="application/json")
    assert (mistyped.status, mistyped.code) == (415, "UNSUPPORTED_MEDIA_TYPE")


def test_an_unexpected_failure_is_an_audited_internal_error(kit: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in a stage answers INTERNAL_ERROR (Server) and is recorded as a refusal with that code."""
    import gateway.security.verify as verify

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(verify, "verify_signature", broken)
    outcome = post(kit.client, kit.sign(registration()))
    assert (outcome.status, outcome.code, outcome.faultcode) == (500, "INTERNAL_ERROR", "soapenv:Server")
    assert refusals(kit.app)[-1]["code"] == "INTERNAL_ERROR"
    assert stored_message_ids(kit.app) == []


# --- forged and altered grant tokens --------------------------------------------------------------


def _segments(token: str) -> tuple[dict[str, object], dict[str, object], str]:
    header, payload, signature = token.split(".")
    return _json(header), _json(payload), signature


def _json(segment: str) -> dict[str, object]:
    value: dict[str, object] = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return value


def _b64(value: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def _hs256(header: dict[str, object], payload: dict[str, object], secret: bytes) -> str:
    signing_input = f"{_b64(header)}.{_b64(payload)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def test_forged_and_altered_grant_tokens_are_refused(app: Flask, client: FlaskClient, sign: Signer) -> None:
    from tests.graduates.helpers import LI_MING, activated, context
    from tests.grants.helpers import ask, grant, verification_request

    issued = grant(app, activated(app, client, sign, LI_MING))
    header, payload, signature = _segments(issued.token)
    # The algorithm-confusion attack: HS256 keyed with the gateway's public key, which anyone may know.
    public_pem = context(app).grant_tokens._public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    forger = ec.generate_private_key(ec.SECP256R1())
    tokens = {
        "signed-with-another-key": jwt.encode(payload, forger, algorithm="ES256", headers={"kid": header.get("kid")}),
        "claims-altered-signature-kept": f"{_b64(header)}.{_b64({**payload, 'aud': 'anyone'})}.{signature}",
        "alg-none": f"{_b64({**header, 'alg': 'none'})}.{_b64(payload)}.",
        "hs256-with-the-public-key": _hs256({**header, "alg": "HS256"}, payload, public_pem),
        "truncated": issued.token[:-10],
        "signature-of-another-token": f"{_b64(header)}.{_b64({**payload, 'jti': str(uuid.uuid4())})}.{signature}",
    }
    codes = {name: ask(client, sign, verification_request(token)).fault for name, token in tokens.items()}
    assert codes == dict.fromkeys(tokens, "AUTHORISATION_INVALID")
    assert ask(client, sign, verification_request(issued.token)).status == 200  # the genuine one works
