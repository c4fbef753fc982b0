"""The evidence bundle of a real accepted message, checked by the standalone verifier in a Python
process that cannot import the gateway, and refused with a specific message after any tampering."""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from gateway.audit.evidence import FORMAT, EvidenceNotReady, build_bundle
from gateway.cli import main
from gateway.errors import NotFound, ValidationError
from gateway.pki.devca import DevelopmentCA
from gateway.pki.keystore import load_private_key
from gateway.sdk.envelope import wrap
from gateway.settings import PROJECT_ROOT, Settings
from gateway.store.db import transaction
from tests.conftest import EDUCATION_DEPARTMENT, PRIVATE_EMPLOYER, UNIVERSITY, Signer, example
from tests.domain.test_season import current_offer
from tests.mailbox.helpers import acknowledge_request, ask, delivered_ids, fetch_request
from tests.security.variants import development_ca, register, registration, sign_custom

VERIFIER = PROJECT_ROOT / "tools" / "verify_evidence.py"
# Runs the verifier as an auditor would, in isolated mode, with the gateway and its other libraries
# made unimportable: a verifier that reached for them would fail here.
RUN_WITHOUT_GATEWAY = """
import runpy, sys
for name in ("gateway", "connectors", "signxml", "sqlalchemy", "flask", "zeep", "xmlsec", "tests"):
    sys.modules[name] = None
path = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(path, run_name="__main__")
"""


def verify(bundle: Path, *options: str) -> tuple[int, str]:
    result = subprocess.run(
        [sys.executable, "-I", "-c", RUN_WITHOUT_GATEWAY, str(VERIFIER), str(bundle), *options],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


def export(home: Path, message_id: str, out: Path, *options: str) -> tuple[int, str]:
    env = {"GATEWAY_DATA_DIR": str(home / "data"), "GATEWAY_KEYS_DIR": str(home / "keys")}
    result = CliRunner().invoke(main, ["audit", "export", message_id, "--out", str(out), *options], env=env)
    return result.exit_code, result.output


def send(client: FlaskClient, data: bytes) -> int:
    return client.post("/soap", data=data, content_type="text/xml").status_code


def accepted_message(sign: Signer, message_id: str) -> bytes:
    """A destination registration to the education department's mailbox (accepted however often it is sent)."""
    return sign(registration(message_id), as_=UNIVERSITY)


def offer(sign: Signer, message_id: str) -> bytes:
    """An agreement offer from the private employer, valid now (another sender than the university)."""
    document = current_offer(example("agreement-offer"))
    envelope = wrap(
        document, sender=PRIVATE_EMPLOYER, recipient=UNIVERSITY, service="AgreementOffer", message_id=message_id
    )
    return sign(envelope, as_=PRIVATE_EMPLOYER)


@pytest.fixture
def anchor(settings: Settings) -> str:
    return str(settings.keys_dir / "ca" / "ca.cert.pem")


@pytest.fixture
def bundle(client: FlaskClient, sign: Signer, home: Path, tmp_path: Path) -> Path:
    """The exported bundle of an accepted message that its sender sent again (answered with the
    original receipt) and which its recipient fetched and acknowledged: three entries about it."""
    message_id = str(uuid.uuid4())
    data = accepted_message(sign, message_id)
    assert send(client, data) == 200
    assert send(client, data) == 200  # sent again: the original receipt, recorded with the message id
    assert delivered_ids(ask(client, sign, fetch_request(), EDUCATION_DEPARTMENT)) == [message_id]
    acknowledged = ask(client, sign, acknowledge_request((message_id, UNIVERSITY)), EDUCATION_DEPARTMENT)
    assert acknowledged.fault_code is None
    out = tmp_path / "evidence.json"
    code, output = export(home, message_id, out)  # runs the sequencer: nothing is signed for yet
    assert code == 0, output
    return out


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_bytes())
    return document


def test_the_bundle_holds_what_an_auditor_needs_and_verifies(bundle: Path, anchor: str, settings: Settings) -> None:
    document = load(bundle)
    assert document["format"] == FORMAT
    entries = document["log"]["entries"]
    kinds = [json.loads(base64.b64decode(e["entry"]))["kind"] for e in entries]
    assert kinds == ["message.accepted", "message.resent", "delivery.delivered"]
    assert base64.b64decode(document["message"]["envelope"]).startswith(b"<?xml")
    assert document["certificates"]["trust_anchors"] == [Path(anchor).read_text()]
    gateway_cert = (settings.keys_dir / "gateway" / "cert.pem").read_text()
    assert document["certificates"]["gateway"] == gateway_cert
    code, output = verify(bundle, "--trust-anchor", anchor)
    assert code == 0, output
    for line in ("ok    message: RSA-SHA256 signature", "ok    receipt: signed by the gateway", "ok    checkpoint:"):
        assert line in output
    assert output.count("leaf hash and inclusion proof verify") == 3
    assert output.rstrip().endswith("OK: all 7 checks passed")


def test_the_verifier_imports_only_the_standard_library_cryptography_and_lxml() -> None:
    tree = ast.parse(VERIFIER.read_text(encoding="utf-8"))
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {
        node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported - sys.stdlib_module_names == {"cryptography", "lxml"}


def edit(path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    document = load(path)
    change(document)
    path.write_text(json.dumps(document))
    return path


def change_bytes(value: str, old: bytes, new: bytes) -> str:
    data = base64.b64decode(value)
    assert data.count(old) == 1, old
    return base64.b64encode(data.replace(old, new)).decode()


def accepted_entry(document: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = document["log"]["entries"][0]
    return entry


def _message(document: dict[str, Any]) -> None:
    document["message"]["envelope"] = change_bytes(document["message"]["envelope"], b">bachelor<", b">bacheloR<")


def _receipt(document: dict[str, Any]) -> None:
    document["receipt"] = change_bytes(document["receipt"], b">accepted<", b">acceptee<")


def _entry(document: dict[str, Any]) -> None:
    entry = accepted_entry(document)
    entry["entry"] = change_bytes(entry["entry"], b'"message.accepted"', b'"message.acceptee"')


def _entry_and_its_leaf_hash(document: dict[str, Any]) -> None:
    _entry(document)
    entry = accepted_entry(document)
    forged = hashlib.sha256(b"\x00" + base64.b64decode(entry["entry"])).digest()
    entry["leaf_hash"] = base64.b64encode(forged).decode()


def _proof(document: dict[str, Any]) -> None:
    entry = accepted_entry(document)
    first = bytearray(base64.b64decode(entry["inclusion_proof"][0]))
    first[0] ^= 1
    entry["inclusion_proof"][0] = base64.b64encode(bytes(first)).decode()


def _checkpoint(document: dict[str, Any]) -> None:
    note: str = document["log"]["checkpoint"]
    lines = note.split("\n")
    lines[1] = str(int(lines[1]) + 1)  # claim one more entry than was signed
    document["log"]["checkpoint"] = "\n".join(lines)


def _sha1(document: dict[str, Any]) -> None:
    document["message"]["envelope"] = change_bytes(
        document["message"]["envelope"],
        b"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        b"http://www.w3.org/2000/09/xmldsig#rsa-sha1",
    )


def _dropped_acceptance(document: dict[str, Any]) -> None:
    del document["log"]["entries"][0]


TAMPERING = {
    "message": (_message, "FAIL  message: the digest of the signed soap:Body (#Body-"),
    "receipt": (_receipt, "FAIL  receipt: the digest of the signed gw:Receipt (#receipt-"),
    "entry": (_entry, "FAIL  entry at leaf {leaf}: its bytes do not hash to its leaf hash"),
    "entry-and-leaf-hash": (_entry_and_its_leaf_hash, "FAIL  entry at leaf {leaf}: its inclusion proof does not lead"),
    "proof": (_proof, "FAIL  entry at leaf {leaf}: its inclusion proof does not lead to the checkpoint's root"),
    "checkpoint": (_checkpoint, "FAIL  checkpoint: the signature does not verify"),
    "dropped-acceptance": (_dropped_acceptance, "FAIL  acceptance: the entry at leaf {leaf} that the receipt names"),
    "sha1": (_sha1, "FAIL  message: signature method http://www.w3.org/2000/09/xmldsig#rsa-sha1 uses SHA-1"),
}


@pytest.mark.parametrize("part", list(TAMPERING))
def test_a_changed_byte_fails_with_a_message_naming_it(bundle: Path, anchor: str, part: str) -> None:
    change, expected = TAMPERING[part]
    leaf = accepted_entry(load(bundle))["leaf_index"]
    code, output = verify(edit(bundle, change), "--trust-anchor", anchor)
    assert code == 1, output
    assert expected.format(leaf=leaf) in output, output
    assert "FAILED:" in output
    # Only what was changed fails (and what depends on it): a changed receipt leaves the message good.
    if part in ("receipt", "checkpoint", "entry", "proof"):
        assert "ok    message:" in output


def test_another_trust_anchor_or_fingerprint_fails(bundle: Path, tmp_path: Path, anchor: str) -> None:
    other = DevelopmentCA.ensure(tmp_path / "other", datetime.now(UTC))
    code, output = verify(bundle, "--trust-anchor", str(other.cert_path))
    assert code == 1 and "does not chain to the trust anchor" in output
    code, output = verify(bundle, "--anchor-fingerprint", "00" * 32)
    assert code == 1 and "no trust anchor has the fingerprint" in output
    fingerprint = [line for line in verify(bundle)[1].splitlines() if line.startswith("Trust anchor:")]
    assert len(fingerprint) == 1
    code, output = verify(bundle, "--anchor-fingerprint", fingerprint[0].rsplit(" ", 1)[-1])
    assert code == 0, output


def test_a_bundle_that_is_not_one_is_unreadable(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"format": "something else"}')
    code, output = verify(tmp_path / "x.json")
    assert code == 2 and "not an evidence bundle" in output
    (tmp_path / "x.json").write_text("not json")
    assert verify(tmp_path / "x.json")[0] == 2


def test_ecdsa_sender_with_a_routing_header_bound_by_the_timestamp(
    app: Flask, client: FlaskClient, settings: Settings, home: Path, tmp_path: Path, anchor: str
) -> None:
    issued = development_ca(settings).issue(tmp_path / "ec", UNIVERSITY, "EC test", datetime.now(UTC), "ec")
    register(app, UNIVERSITY, issued.certificate)
    message_id = str(uuid.uuid4())
    data = sign_custom(
        registration(message_id),
        load_private_key(issued.key_path),
        issued.certificate,
        parts=("Body", "Timestamp"),
        bind_routing=True,
    )
    assert send(client, data) == 200
    code, output = export(home, message_id, tmp_path / "ec.json")
    assert code == 0, output
    code, output = verify(tmp_path / "ec.json", "--trust-anchor", anchor)
    assert code == 0, output
    assert "ECDSA-SHA256 signature" in output


def test_export_waits_for_nothing_it_is_told_not_to_and_names_what_is_missing(
    app: Flask, client: FlaskClient, sign: Signer, home: Path, settings: Settings, tmp_path: Path
) -> None:
    message_id = str(uuid.uuid4())
    assert send(client, accepted_message(sign, message_id)) == 200
    code, output = export(home, message_id, tmp_path / "b.json", "--no-sequence")
    assert code == 1 and "no signed checkpoint yet" in output
    app.extensions["gateway"].sequencer.run_once()
    later = str(uuid.uuid4())
    assert send(client, accepted_message(sign, later)) == 200
    with transaction(app.extensions["gateway"].sessions) as session:
        with pytest.raises(EvidenceNotReady, match="not in a signed checkpoint yet"):
            build_bundle(session, later, settings)
        assert load_bytes(build_bundle(session, message_id, settings))["message"]["message_id"] == message_id
        with pytest.raises(NotFound, match="no accepted message"):
            build_bundle(session, str(uuid.uuid4()), settings)
    code, output = export(home, str(uuid.uuid4()), tmp_path / "b.json")
    assert code == 1 and "no accepted message" in output
    assert not (tmp_path / "b.json").exists()


def test_a_plumbing_request_has_no_evidence(app: Flask, client: FlaskClient, settings: Settings, sign: Signer) -> None:
    message_id = str(uuid.uuid4())
    envelope = wrap(
        fetch_request(), sender=UNIVERSITY, recipient=UNIVERSITY, service="FetchMessages", message_id=message_id
    )
    assert send(client, sign(envelope, as_=UNIVERSITY)) == 200
    app.extensions["gateway"].sequencer.run_once()
    with transaction(app.extensions["gateway"].sessions) as session, pytest.raises(NotFound, match="no receipt"):
        build_bundle(session, message_id, settings)


def load_bytes(data: bytes) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(data)
    return document


def test_a_message_id_two_senders_used_needs_the_sender(
    app: Flask, client: FlaskClient, sign: Signer, settings: Settings
) -> None:
    message_id = str(uuid.uuid4())
    assert send(client, accepted_message(sign, message_id)) == 200
    assert send(client, offer(sign, message_id)) == 200
    app.extensions["gateway"].sequencer.run_once()
    with transaction(app.extensions["gateway"].sessions) as session:
        with pytest.raises(ValidationError, match="was used by"):
            build_bundle(session, message_id, settings)
        bundle = load_bytes(build_bundle(session, message_id, settings, sender=PRIVATE_EMPLOYER))
    assert bundle["message"]["sender"] == PRIVATE_EMPLOYER
