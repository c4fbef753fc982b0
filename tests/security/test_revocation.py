"""Revocation fails closed: no current CRL means no message accepted, no start-up, and /readyz says why."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree
from sqlalchemy import select

from gateway.audit.entries import decode
from gateway.audit.models import AuditEntry
from gateway.cli import main
from gateway.errors import ConfigurationError, RevocationUnavailable
from gateway.pki.devca import DevelopmentCA, crl_path
from gateway.sdk.signing import sign_envelope_bytes
from gateway.security.trust import TrustStore
from gateway.settings import Settings
from gateway.store.db import transaction
from gateway.web.app import create_app
from tests.conftest import UNIVERSITY, Credentials, credentials
from tests.security.variants import NS, development_ca, post, receipt_of, registration, stored_ids

RELOAD = 1.1  # the trust store looks at its files at most once a second


@pytest.fixture
def university(settings: Settings) -> Credentials:
    return credentials(settings.keys_dir, UNIVERSITY)


def signed(university: Credentials) -> bytes:
    return sign_envelope_bytes(registration(), university.key, university.certificate)


def write_crl(ca: DevelopmentCA, path: Path, next_update: datetime, serials: Sequence[int] = ()) -> None:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(next_update - timedelta(days=30))
        .next_update(next_update)
    )
    for serial in serials:
        revoked = (
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(next_update - timedelta(days=1))
        )
        builder = builder.add_revoked_certificate(revoked.build())
    path.write_bytes(builder.sign(ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))


def unavailable(client: FlaskClient, data: bytes) -> str:
    """The fault text of a message refused because revocation cannot be checked (503, soapenv:Server)."""
    status, body = post(client, data)
    assert status == 503, etree.tostring(body)[:2000]
    assert body.findtext(".//faultcode") == "soapenv:Server"
    assert body.findtext(".//gw:FaultDetail/gw:Code", namespaces=NS) == "REVOCATION_UNAVAILABLE"
    return body.findtext(".//gw:FaultDetail/gw:Message", namespaces=NS) or ""


def readiness(client: FlaskClient) -> tuple[int, dict[str, object]]:
    # Integrate what waits first: the template home's audit entries are as old as the test run,
    # and /readyz would rightly fail for them (tests/test_health.py).
    client.application.extensions["gateway"].sequencer.run_once()
    response = client.get("/readyz")
    assert response.json is not None
    return response.status_code, response.json


def refusal_codes(app: Flask) -> list[str]:
    with transaction(app.extensions["gateway"].sessions) as session:
        rows = session.scalars(select(AuditEntry.entry).where(AuditEntry.kind == "message.refused"))
        return [str(decode(row)["code"]) for row in rows]


def test_a_missing_crl_refuses_every_message_and_readyz_names_the_file(
    app: Flask, client: FlaskClient, settings: Settings, university: Credentials
) -> None:
    receipt_of(client, signed(university))
    assert readiness(client)[0] == 200
    crl_path(settings.keys_dir).unlink()
    time.sleep(RELOAD)
    before = stored_ids(app)
    assert "no revocation list" in unavailable(client, signed(university))
    assert stored_ids(app) == before  # refused: nothing stored
    assert refusal_codes(app) == ["REVOCATION_UNAVAILABLE"]  # and audited like every refusal
    status, body = readiness(client)
    assert status == 503 and body["status"] == "not ready"
    assert body["checks"]["revocation"]["ok"] is False  # type: ignore[index]
    [reason] = body["reasons"]  # type: ignore[misc]
    assert reason.startswith(f"revocation: the revocation list {crl_path(settings.keys_dir)} is missing")


def test_an_expired_crl_refuses_every_message_until_it_is_reissued(
    client: FlaskClient, settings: Settings, university: Credentials
) -> None:
    write_crl(development_ca(settings), crl_path(settings.keys_dir), datetime.now(UTC) - timedelta(minutes=1))
    time.sleep(RELOAD)
    assert "expired" in unavailable(client, signed(university))
    status, body = readiness(client)
    assert status == 503 and "expired" in str(body["checks"]["revocation"]["reason"])  # type: ignore[index]
    env = {"GATEWAY_DATA_DIR": str(settings.data_dir), "GATEWAY_KEYS_DIR": str(settings.keys_dir)}
    reissued = CliRunner().invoke(main, ["keys", "crl"], env=env)
    assert reissued.exit_code == 0, reissued.output
    assert "re-issued: lists 0 certificate(s)" in reissued.output
    time.sleep(RELOAD)
    assert readiness(client)[0] == 200
    receipt_of(client, signed(university))


def test_a_crl_not_signed_by_a_trust_anchor_counts_as_none(
    client: FlaskClient, settings: Settings, university: Credentials, tmp_path: Path
) -> None:
    stranger = DevelopmentCA.ensure(tmp_path / "stranger", datetime.now(UTC))
    write_crl(stranger, crl_path(settings.keys_dir), datetime.now(UTC) + timedelta(days=1))
    time.sleep(RELOAD)
    unavailable(client, signed(university))
    reasons = readiness(client)[1]["reasons"]
    assert any("is not signed by any trust anchor" in r for r in reasons)  # type: ignore[attr-defined]


def test_a_revoked_serial_on_an_expired_list_is_still_revoked(
    client: FlaskClient, settings: Settings, university: Credentials
) -> None:
    write_crl(
        development_ca(settings),
        crl_path(settings.keys_dir),
        datetime.now(UTC) - timedelta(minutes=1),
        [university.certificate.serial_number],
    )
    time.sleep(RELOAD)
    status, body = post(client, signed(university))
    assert status == 500 and body.findtext(".//gw:FaultDetail/gw:Code", namespaces=NS) == "CERT_REVOKED"


def test_a_ca_without_a_crl_cannot_vouch_for_its_certificates(settings: Settings, tmp_path: Path) -> None:
    other = DevelopmentCA.ensure(tmp_path / "other", datetime.now(UTC))
    renamed = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Another CA, without a CRL")])
    other = DevelopmentCA(other.key, _self_signed(other, renamed), tmp_path / "other.pem")
    other.cert_path.write_bytes(other.certificate.public_bytes(serialization.Encoding.PEM))
    issued = other.issue(tmp_path / "leaf", UNIVERSITY, "a university", datetime.now(UTC))
    store = TrustStore((*settings.anchors, other.cert_path), settings.crls)
    problems = store.revocation_problems(datetime.now(UTC))
    assert problems == [f"no revocation list from the CA {other.certificate.subject.rfc4514_string()}"]
    with pytest.raises(RevocationUnavailable, match="holds no revocation list from the CA"):
        store.check(issued.certificate, datetime.now(UTC))
    store.check(credentials(settings.keys_dir, UNIVERSITY).certificate, datetime.now(UTC))  # its CA has one


def _self_signed(ca: DevelopmentCA, name: x509.Name) -> x509.Certificate:
    """``ca``'s certificate again under another name (the development CA's name is fixed)."""
    builder = x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(ca.key.public_key())
    builder = builder.serial_number(x509.random_serial_number()).not_valid_before(ca.certificate.not_valid_before_utc)
    builder = builder.not_valid_after(ca.certificate.not_valid_after_utc)
    for extension in ca.certificate.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    return builder.sign(ca.key, hashes.SHA256())


def test_the_app_does_not_start_without_a_current_crl(settings: Settings) -> None:
    path = crl_path(settings.keys_dir)
    write_crl(development_ca(settings), path, datetime.now(UTC) - timedelta(seconds=1))
    with pytest.raises(ConfigurationError, match=r"expired at .*\n.*gateway keys crl"):
        create_app(settings)
    path.unlink()
    with pytest.raises(ConfigurationError, match="is missing"):
        create_app(settings)


@pytest.mark.slow
@pytest.mark.parametrize("command", [["serve"], ["worker"]])
def test_serve_and_worker_say_in_two_lines_why_they_do_not_start(settings: Settings, command: list[str]) -> None:
    crl_path(settings.keys_dir).unlink()
    env = {
        **os.environ,
        "GATEWAY_DATA_DIR": str(settings.data_dir),
        "GATEWAY_KEYS_DIR": str(settings.keys_dir),
        "GATEWAY_BROKER_URL": "redis://127.0.0.1:1/0" if command == ["worker"] else "",
    }
    done = subprocess.run(
        [sys.executable, "-m", "gateway", *command], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and done.stdout == ""
    lines = [line for line in done.stderr.splitlines() if line and "WARNING" not in line]
    assert len(lines) == 2, done.stderr
    assert lines[0].startswith("Error: revocation cannot be checked: the revocation list") and "is missing" in lines[0]
    assert "gateway keys crl" in lines[1]


def test_keys_crl_keeps_the_revocations_and_will_not_invent_a_lost_list(settings: Settings) -> None:
    env = {"GATEWAY_DATA_DIR": str(settings.data_dir), "GATEWAY_KEYS_DIR": str(settings.keys_dir)}
    serial = credentials(settings.keys_dir, UNIVERSITY).certificate.serial_number
    path = crl_path(settings.keys_dir)
    write_crl(development_ca(settings), path, datetime.now(UTC) + timedelta(hours=1), [serial])
    assert CliRunner().invoke(main, ["keys", "crl"], env=env).exit_code == 0
    reissued = x509.load_pem_x509_crl(path.read_bytes())
    assert reissued.get_revoked_certificate_by_serial_number(serial) is not None
    assert reissued.next_update_utc is not None and reissued.next_update_utc > datetime.now(UTC) + timedelta(days=29)
    path.unlink()
    lost = CliRunner().invoke(main, ["keys", "crl"], env=env)
    assert lost.exit_code == 1 and "restore it from a backup" in lost.output and not path.exists()
    assert CliRunner().invoke(main, ["keys", "crl", "--new"], env=env).exit_code == 0
    assert list(x509.load_pem_x509_crl(path.read_bytes())) == []


def test_init_reissues_an_ageing_list_and_never_replaces_a_lost_one(settings: Settings) -> None:
    env = {"GATEWAY_DATA_DIR": str(settings.data_dir), "GATEWAY_KEYS_DIR": str(settings.keys_dir)}
    path = crl_path(settings.keys_dir)
    serial = credentials(settings.keys_dir, UNIVERSITY).certificate.serial_number
    write_crl(development_ca(settings), path, datetime.now(UTC) + timedelta(days=3), [serial])
    done = CliRunner().invoke(main, ["init"], env=env)
    assert done.exit_code == 0 and "re-issued revocation list" in done.output
    crl = x509.load_pem_x509_crl(path.read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(serial) is not None
    assert crl.next_update_utc is not None and crl.next_update_utc > datetime.now(UTC) + timedelta(days=29)
    again = CliRunner().invoke(main, ["init"], env=env)
    assert "revocation" not in again.output  # half its life is left: reused
    path.unlink()
    lost = CliRunner().invoke(main, ["init"], env=env)
    assert lost.exit_code == 0 and "attention: the revocation list" in lost.output and not path.exists()
