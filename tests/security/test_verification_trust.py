"""The verification stage through POST /soap: algorithms, keys and the signing certificate."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import xmlsec
from flask import Flask
from flask.testing import FlaskClient
from signxml.algorithms import CanonicalizationMethod

from gateway.pki.devca import DevelopmentCA
from gateway.pki.keystore import load_private_key
from gateway.sdk.signing import sign_envelope_bytes
from gateway.settings import Settings
from tests.conftest import EDUCATION_DEPARTMENT, UNIVERSITY, Credentials, credentials
from tests.security.variants import (
    NS,
    development_ca,
    fresh_client,
    make_certificate,
    one,
    parse,
    receipt_of,
    refusal,
    register,
    registration,
    sign_custom,
    sign_with_zeep,
    stored_ids,
    weak_key,
    write_crl,
)

RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"


@pytest.fixture
def university(settings: Settings) -> Credentials:
    return credentials(settings.keys_dir, UNIVERSITY)


@pytest.fixture
def university_folder(settings: Settings) -> Path:
    return settings.keys_dir / "participants" / UNIVERSITY


def other_ca(folder: Path) -> DevelopmentCA:
    return DevelopmentCA.ensure(folder / "other-ca", datetime.now(UTC))


def algorithms(data: bytes) -> tuple[str | None, set[str | None]]:
    root = parse(data)
    method = one(root, "//ds:SignedInfo/ds:SignatureMethod").get("Algorithm")
    return method, {d.get("Algorithm") for d in root.iterfind(".//ds:Reference/ds:DigestMethod", NS)}


# --- algorithms -------------------------------------------------------------------------------


def test_zeeps_binary_signature_with_sha256_is_accepted(client: FlaskClient, university_folder: Path) -> None:
    data = sign_with_zeep(registration(), university_folder, xmlsec.Transform.RSA_SHA256, xmlsec.Transform.SHA256)
    assert algorithms(data) == (RSA_SHA256, {"http://www.w3.org/2001/04/xmlenc#sha256"})
    receipt_of(client, data)


def test_zeeps_default_rsa_sha1_signature_is_refused(client: FlaskClient, app: Flask, university_folder: Path) -> None:
    data = sign_with_zeep(registration(), university_folder)
    assert algorithms(data) == (RSA_SHA1, {SHA1})
    assert refusal(client, data) == "ALGORITHM_NOT_ALLOWED"
    assert stored_ids(app) == []


def test_sha1_digests_under_an_rsa_sha256_signature_are_refused(client: FlaskClient, university_folder: Path) -> None:
    data = sign_with_zeep(registration(), university_folder, xmlsec.Transform.RSA_SHA256)
    assert algorithms(data) == (RSA_SHA256, {SHA1})
    assert refusal(client, data) == "ALGORITHM_NOT_ALLOWED"


@pytest.mark.parametrize("kind", ["rsa-1024", "ec-p521"])
def test_weak_or_unlisted_key_from_the_development_ca_is_refused(
    client: FlaskClient, app: Flask, settings: Settings, kind: str
) -> None:
    ca = development_ca(settings)
    key = weak_key(kind)
    certificate = make_certificate(key, ca.key, ca.certificate.subject)
    register(app, UNIVERSITY, certificate)
    data = sign_custom(registration(), key, certificate)
    assert refusal(client, data) == "ALGORITHM_NOT_ALLOWED"


@pytest.mark.parametrize(
    "c14n",
    [CanonicalizationMethod.CANONICAL_XML_1_0, CanonicalizationMethod.CANONICAL_XML_1_1],
    ids=["inclusive-c14n-1.0", "c14n-1.1"],
)
def test_canonicalisation_other_than_exclusive_is_refused(
    client: FlaskClient, university: Credentials, c14n: CanonicalizationMethod
) -> None:
    data = sign_custom(registration(), university.key, university.certificate, c14n=c14n)
    assert one(parse(data), "//ds:CanonicalizationMethod").get("Algorithm") == c14n.value
    assert refusal(client, data) == "ALGORITHM_NOT_ALLOWED"


# --- certificates -----------------------------------------------------------------------------


@pytest.mark.parametrize("issued_at", [timedelta(days=-800), timedelta(days=1)], ids=["expired", "not-yet-valid"])
def test_certificate_outside_its_validity_is_refused(
    client: FlaskClient, app: Flask, settings: Settings, tmp_path: Path, issued_at: timedelta
) -> None:
    now = datetime.now(UTC)
    issued = development_ca(settings).issue(tmp_path, UNIVERSITY, "dated", now + issued_at)
    assert not issued.certificate.not_valid_before_utc <= now <= issued.certificate.not_valid_after_utc
    register(app, UNIVERSITY, issued.certificate)
    data = sign_envelope_bytes(registration(), load_private_key(issued.key_path), issued.certificate)
    assert refusal(client, data) == "CERT_EXPIRED"


@pytest.mark.parametrize("issuer", ["self-signed", "another-ca", "no-signing-key-usage"])
def test_untrusted_certificate_registered_to_the_sender_is_refused(
    client: FlaskClient, app: Flask, settings: Settings, university: Credentials, tmp_path: Path, issuer: str
) -> None:
    if issuer == "self-signed":
        certificate = make_certificate(university.key)  # the sender's own key, certified by itself
    else:
        ca = development_ca(settings) if issuer == "no-signing-key-usage" else other_ca(tmp_path)
        certificate = make_certificate(university.key, ca.key, ca.certificate.subject, may_sign=issuer == "another-ca")
    register(app, UNIVERSITY, certificate)
    data = sign_envelope_bytes(registration(), university.key, certificate)
    assert refusal(client, data) == "CERT_UNTRUSTED"


def test_ca_certificate_as_signing_certificate_is_refused(client: FlaskClient, app: Flask, settings: Settings) -> None:
    ca = development_ca(settings)
    register(app, UNIVERSITY, ca.certificate)
    data = sign_envelope_bytes(registration(), ca.key, ca.certificate)
    assert refusal(client, data) == "CERT_UNTRUSTED"


def test_certificate_of_another_participant_is_refused(client: FlaskClient, settings: Settings) -> None:
    other = credentials(settings.keys_dir, EDUCATION_DEPARTMENT)  # issued by the development CA, registered
    data = sign_envelope_bytes(registration(sender=UNIVERSITY), other.key, other.certificate)
    assert refusal(client, data) == "CERT_NOT_REGISTERED"


def test_unregistered_certificate_is_refused_until_registered(
    client: FlaskClient, app: Flask, settings: Settings, tmp_path: Path
) -> None:
    issued = development_ca(settings).issue(tmp_path, UNIVERSITY, "new certificate", datetime.now(UTC))
    key = load_private_key(issued.key_path)
    assert refusal(client, sign_envelope_bytes(registration(), key, issued.certificate)) == "CERT_NOT_REGISTERED"
    register(app, UNIVERSITY, issued.certificate)
    receipt_of(client, sign_envelope_bytes(registration(), key, issued.certificate))


def test_revoked_certificate_is_refused(settings: Settings, university: Credentials) -> None:
    write_crl(settings, [university.certificate.serial_number])
    with fresh_client(settings) as client:
        data = sign_envelope_bytes(registration(), university.key, university.certificate)
        assert refusal(client, data) == "CERT_REVOKED"


def test_crl_of_other_serials_leaves_the_certificate_good(settings: Settings, university: Credentials) -> None:
    write_crl(settings, [university.certificate.serial_number + 1])
    with fresh_client(settings) as client:
        receipt_of(client, sign_envelope_bytes(registration(), university.key, university.certificate))


def test_revocation_takes_effect_in_a_running_gateway(
    client: FlaskClient, settings: Settings, university: Credentials
) -> None:
    receipt_of(client, sign_envelope_bytes(registration(), university.key, university.certificate))
    write_crl(settings, [university.certificate.serial_number])
    time.sleep(1.1)  # the trust store looks at its files at most once a second
    data = sign_envelope_bytes(registration(), university.key, university.certificate)
    assert refusal(client, data) == "CERT_REVOKED"
