"""The gateway's signature on a forwarded message (gw:Delivery) verifies with xmlsec1, and the
sender's own signature inside it still verifies with xmlsec1 too."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree
from sqlalchemy import select

from gateway.delivery.forward import delivery_element
from gateway.intake.soap import envelope
from gateway.messages.models import Delivery, Message
from gateway.settings import Settings
from gateway.store.db import transaction
from tests.conftest import EDUCATION_DEPARTMENT, UNIVERSITY, Signer, require
from tests.domain.helpers import send

pytestmark = pytest.mark.slow
GATEWAY_SIGNATURE = "//*[local-name()='Delivery']/*[local-name()='Signature']"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"


def xmlsec1(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([shutil.which("xmlsec1") or "xmlsec1", *args], capture_output=True, timeout=30, check=False)


def gateway_signature_check(forwarded: Path, ca: Path) -> subprocess.CompletedProcess[bytes]:
    """xmlsec1 on the gateway's signature of a Delivery, trusting only the CA's certificates."""
    return xmlsec1(
        "--verify",
        "--node-xpath",
        GATEWAY_SIGNATURE,
        "--trusted-pem",
        str(ca),
        "--enabled-key-data",
        "x509",
        "--id-attr:Id",
        "urn:gradex:gateway:1:Delivery",
        str(forwarded),
    )


def test_forwarded_message_verifies_with_xmlsec1(
    app: Flask, client: FlaskClient, sign: Signer, settings: Settings, tmp_path: Path
) -> None:
    require("xmlsec1", lambda: subprocess.run(["xmlsec1", "--version"], capture_output=True, check=True, timeout=30))
    assert send(client, sign, "destination-registration", UNIVERSITY, EDUCATION_DEPARTMENT)[0] is None
    context = app.extensions["gateway"]
    with transaction(context.sessions) as session:
        delivery = session.scalars(select(Delivery)).one()
        message = session.get(Message, delivery.message_pk)
        assert message is not None
        signed = delivery_element(message, delivery.recipient_id, 1, context.delivery.signer, context.payloads)
    forwarded = tmp_path / "delivery.xml"
    forwarded.write_bytes(envelope(signed))
    ca = settings.keys_dir / "ca" / "ca.cert.pem"
    # The sender's ds:Signature (inside gw:Original) comes first in the document: point xmlsec1 at
    # the gateway's, the last child of gw:Delivery.
    gateway_check = gateway_signature_check(forwarded, ca)
    assert gateway_check.returncode == 0, gateway_check.stderr.decode()
    # The sender's signature, inside gw:Original, is intact: check it on the original envelope alone.
    original = etree.fromstring(forwarded.read_bytes()).find(".//{urn:gradex:gateway:1}Original/*")
    assert original is not None
    alone = tmp_path / "original.xml"
    alone.write_bytes(etree.tostring(original))
    token = original.findtext(
        ".//{http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd}BinarySecurityToken"
    )
    assert token
    pem = tmp_path / "sender.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n" + token + "\n-----END CERTIFICATE-----\n")
    sender_check = xmlsec1(
        "--verify",
        "--pubkey-cert-pem",
        str(pem),
        "--id-attr:Id",
        "http://schemas.xmlsoap.org/soap/envelope/:Body",
        "--id-attr:Id",
        f"{WSU}:Timestamp",
        "--id-attr:Id",
        "urn:gradex:gateway:1:Routing",
        str(alone),
    )
    assert sender_check.returncode == 0, sender_check.stderr.decode()
    # One changed byte in the forwarded Body breaks the gateway's signature.
    forwarded.write_bytes(forwarded.read_bytes().replace(b"bachelor", b"bacheloR", 1))
    tampered = gateway_signature_check(forwarded, ca)
    assert tampered.returncode != 0


def test_each_delivery_of_a_fetch_answer_verifies_with_the_command_of_delivery_md(
    client: FlaskClient, sign: Signer, settings: Settings, tmp_path: Path
) -> None:
    """docs/delivery.md: one xmlsec1 run per delivery, the N-th picked by its index."""
    from tests.mailbox.helpers import ask, delivered_ids, fetch_request, send_to_pull_recipient

    require("xmlsec1", lambda: subprocess.run(["xmlsec1", "--version"], capture_output=True, check=True, timeout=30))
    send_to_pull_recipient(client, sign)
    send_to_pull_recipient(client, sign)
    answer = ask(client, sign, fetch_request(10), EDUCATION_DEPARTMENT)
    assert len(delivered_ids(answer)) == 2
    saved = tmp_path / "answer.xml"
    saved.write_bytes(etree.tostring(answer.envelope))
    ca = settings.keys_dir / "ca" / "ca.cert.pem"

    def check(xpath: str) -> subprocess.CompletedProcess[bytes]:
        return xmlsec1(
            "--verify", "--trusted-pem", str(ca), "--enabled-key-data", "x509",
            "--id-attr:Id", "urn:gradex:gateway:1:Delivery", "--node-xpath", xpath, str(saved),
        )  # fmt: skip

    for n in (1, 2):
        result = check(f"(//*[local-name()='Delivery'])[{n}]/*[local-name()='Signature']")
        assert result.returncode == 0, result.stderr.decode()
    assert check(GATEWAY_SIGNATURE).returncode != 0  # unindexed: several signatures named
