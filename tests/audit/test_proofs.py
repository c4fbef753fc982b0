"""Proofs over HTTP (/log/...) and on the command line, checked against the signed checkpoints
with the RFC 9162 verification algorithms, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select

from gateway.audit import checkpoint as notes
from gateway.audit import proofs
from gateway.audit.entries import AuditEvent
from gateway.audit.log import record
from gateway.audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from gateway.audit.models import AuditCheckpoint, AuditEntry
from gateway.audit.sequencer import KEY_NAME, Sequencer
from gateway.bootstrap import gateway_key_paths
from gateway.cli import main
from gateway.clock import SystemClock
from gateway.errors import NotFound, ValidationError
from gateway.pki.keystore import PemKeyStore
from gateway.settings import Settings
from gateway.store.db import connect, session_factory, transaction
from gateway.web.app import create_app
from tests.audit.test_log import accept
from tests.conftest import Signer


def public_key(settings: Settings) -> ec.EllipticCurvePublicKey:
    key = x509.load_pem_x509_certificate(gateway_key_paths(settings.keys_dir)[1].read_bytes()).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


def signed(note: str, settings: Settings) -> notes.Checkpoint:
    return notes.verify(note, KEY_NAME, public_key(settings))


def hashes(document: dict[str, Any]) -> list[bytes]:
    return [base64.b64decode(h) for h in document["hashes"]]


def grow(settings: Settings, count: int, batch: int) -> list[AuditCheckpoint]:
    """``count`` more entries, integrated ``batch`` at a time (one checkpoint each); every checkpoint."""
    engine = connect(settings.database_url)
    sessions = session_factory(engine)
    key_path, cert_path = gateway_key_paths(settings.keys_dir)
    sequencer = Sequencer(sessions, PemKeyStore(key_path, cert_path), SystemClock(), batch=batch)
    try:
        with transaction(sessions) as session:
            for number in range(count):
                record(session, AuditEvent("test.event", datetime.now(UTC), {"number": number}))
        while sequencer.run_once():
            pass
        with transaction(sessions) as session:
            return list(session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.size)))
    finally:
        engine.dispose()


@pytest.fixture
def store_app(store_settings: Settings) -> Iterator[Flask]:
    application = create_app(store_settings)
    application.config["TESTING"] = True
    yield application
    application.extensions["gateway"].engine.dispose()


def test_every_inclusion_and_consistency_proof_verifies_against_the_signed_checkpoints(
    store_settings: Settings, store_app: Flask
) -> None:
    points = grow(store_settings, 37, batch=7)
    assert len(points) >= 6
    client = store_app.test_client()
    with transaction(store_app.extensions["gateway"].sessions) as session:
        leaves = {
            index: hashed for index, hashed in session.execute(select(AuditEntry.leaf_index, AuditEntry.leaf_hash))
        }
    for point in points:
        checked = signed(point.note, store_settings)
        for index in range(point.size):
            proof = client.get(f"/log/proof/inclusion?index={index}&size={point.size}").get_json()
            assert base64.b64decode(proof["leaf_hash"]) == leaves[index]
            assert proof["checkpoint"] == point.note
            assert verify_inclusion(leaves[index], index, point.size, hashes(proof), checked.root)
            assert not verify_inclusion(leaves[index], index, point.size, hashes(proof), bytes(32))
    for old in points:
        for new in points:
            if old.size > new.size:
                continue
            proof = client.get(f"/log/proof/consistency?first={old.size}&second={new.size}").get_json()
            assert (proof["first_checkpoint"], proof["second_checkpoint"]) == (old.note, new.note)
            old_root = signed(old.note, store_settings).root
            new_root = signed(new.note, store_settings).root
            assert verify_consistency(old.size, new.size, old_root, new_root, hashes(proof))
    # Without a size, against the latest checkpoint; by leaf hash in hex (as on receipts) or base64.
    latest = points[-1]
    by_index = client.get("/log/proof/inclusion?index=5").get_json()
    by_hex = client.get(f"/log/proof/inclusion?leaf_hash={leaves[5].hex()}").get_json()
    by_b64 = client.get("/log/proof/inclusion", query_string={"leaf_hash": base64.b64encode(leaves[5]).decode()})
    assert by_index == by_hex == by_b64.get_json()
    assert by_index["tree_size"] == latest.size and by_index["leaf_index"] == 5


def test_a_proof_is_one_query_of_log_n_nodes(store_settings: Settings) -> None:
    grow(store_settings, 300, batch=1000)
    engine = connect(store_settings.database_url)
    statements: list[str] = []
    executed: list[tuple[str, Any]] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    event.listen(engine, "before_cursor_execute", lambda *args: executed.append((args[2], args[3])))
    try:
        with transaction(session_factory(engine)) as session:
            statements.clear()
            proof = proofs.inclusion(session, index=150)
            assert len([s for s in statements if "audit_nodes" in s]) == 1
            assert len(statements) == 2  # the latest checkpoint (whose note it is), the nodes
            assert len(proof.hashes) <= proof.tree_size.bit_length()
            statements.clear()
            proofs.consistency(session, 77)
            assert len([s for s in statements if "audit_nodes" in s]) == 1
            if engine.dialect.name == "sqlite":  # every node by its primary key, never a scan of the table
                [(sql, params)] = [(s, p) for s, p in executed if "audit_nodes" in s][-1:]
                plan = session.connection().exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params).all()
                details = [str(row[-1]) for row in plan]
                assert not any(d.startswith("SCAN audit_nodes") for d in details), details
                assert any("USING INDEX" in d for d in details), details
    finally:
        engine.dispose()


def get(client: FlaskClient, url: str) -> tuple[int, dict[str, Any]]:
    response = client.get(url)
    assert response.mimetype == "application/json"
    body: dict[str, Any] = response.get_json()
    return response.status_code, body


def test_bad_or_out_of_range_arguments_are_clear_json_errors(app: Flask, client: FlaskClient) -> None:
    assert get(client, "/log/proof/inclusion?index=0")[0] == 404  # no checkpoint yet
    status, body = get(client, "/log/checkpoint")
    assert (status, body["error"]) == (404, "the audit log has no signed checkpoint yet")
    size = app.extensions["gateway"].sequencer.run_once()
    assert size > 2
    cases = {
        "/log/proof/inclusion": (400, "index", "is required"),
        "/log/proof/inclusion?index=abc": (400, "index", "whole number"),
        "/log/proof/inclusion?index=-1": (400, "index", "whole number"),
        f"/log/proof/inclusion?index={size}": (400, "index", f"not in a tree of {size} entries"),
        f"/log/proof/inclusion?index=0&size={size + 1}": (400, "size", f"latest signed checkpoint ({size} entries)"),
        "/log/proof/inclusion?index=0&size=0": (400, "size", "includes nothing"),
        "/log/proof/inclusion?leaf_hash=abcd": (400, "leaf_hash", "64 hex digits"),
        f"/log/proof/inclusion?index=1&leaf_hash={'ab' * 32}": (400, "leaf_hash", "not both"),
        f"/log/proof/inclusion?leaf_hash={'ab' * 32}": (404, None, "no entry of the log has this leaf hash"),
        "/log/proof/consistency": (400, "first", "is required"),
        "/log/proof/consistency?first=0": (400, "first", "at least 1 entry"),
        f"/log/proof/consistency?first={size}&second={size - 1}": (400, "first", "larger than the second tree"),
        f"/log/proof/consistency?first=1&second={size + 5}": (400, "second", "latest signed checkpoint"),
    }
    for url, (code, field, text) in cases.items():
        status, body = get(client, url)
        assert (status, body.get("field")) == (code, field), (url, body)
        assert text in body["error"], (url, body)


def test_an_entry_not_yet_signed_for_is_not_found_until_the_sequencer_runs(
    app: Flask, client: FlaskClient, sign: Signer
) -> None:
    app.extensions["gateway"].sequencer.run_once()
    [receipt] = accept(client, sign, 1)
    leaf = receipt.findtext("{urn:gradex:gateway:1}LogPosition/{urn:gradex:gateway:1}LeafHash")
    status, body = get(client, f"/log/proof/inclusion?leaf_hash={leaf}")
    assert status == 404 and "not yet in the signed tree" in body["error"]
    app.extensions["gateway"].sequencer.run_once()
    status, body = get(client, f"/log/proof/inclusion?leaf_hash={leaf}")
    assert status == 200 and body["leaf_hash"] == base64.b64encode(bytes.fromhex(leaf or "")).decode()


def test_the_checkpoint_is_the_latest_signed_note(app: Flask, client: FlaskClient, settings: Settings) -> None:
    app.extensions["gateway"].sequencer.run_once()
    response = client.get("/log/checkpoint")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    with transaction(app.extensions["gateway"].sessions) as session:
        size = proofs.latest_checkpoint(session).size
    assert signed(response.get_data(as_text=True), settings).size == size


def test_entries_are_served_only_where_made_public(settings: Settings, client: FlaskClient, app: Flask) -> None:
    app.extensions["gateway"].sequencer.run_once()
    status, body = get(client, "/log/entries")
    assert status == 403 and "GATEWAY_AUDIT_ENTRIES_PUBLIC" in body["error"]
    public = create_app(settings.with_overrides(audit_entries_public=True))
    try:
        client = public.test_client()
        status, page = get(client, "/log/entries?start=1&end=1000000")
        assert status == 200
        size = page["tree_size"]
        assert (page["start"], page["end"]) == (1, size) and len(page["entries"]) == size - 1
        proof = client.get(f"/log/proof/inclusion?index=3&size={size}").get_json()
        entry = base64.b64decode(page["entries"][2]["entry"])
        assert page["entries"][2]["leaf_index"] == 3
        assert base64.b64encode(leaf_hash(entry)).decode() == proof["leaf_hash"]
        assert json.loads(entry)["v"] == 1
        assert get(client, f"/log/entries?start={size}")[0] == 400
        assert get(client, "/log/entries?start=2&end=2")[0] == 400
        assert len(get(client, "/log/entries")[1]["entries"]) == min(size, proofs.DEFAULT_ENTRIES)
    finally:
        public.extensions["gateway"].engine.dispose()


def test_the_service_refuses_with_validation_errors_and_not_found(app: Flask) -> None:
    with transaction(app.extensions["gateway"].sessions) as session, pytest.raises(NotFound):
        proofs.latest_checkpoint(session)
    app.extensions["gateway"].sequencer.run_once()
    with transaction(app.extensions["gateway"].sessions) as session:
        with pytest.raises(ValidationError, match="either the leaf index or the leaf hash"):
            proofs.inclusion(session)
        with pytest.raises(ValidationError):
            proofs.parse_leaf_hash("zz" * 32)


# --- the command line -----------------------------------------------------------------------


def cli(home: Path, *args: str) -> tuple[int, str]:
    env = {"GATEWAY_DATA_DIR": str(home / "data"), "GATEWAY_KEYS_DIR": str(home / "keys")}
    result = CliRunner().invoke(main, ["audit", *args], env=env)
    return result.exit_code, result.output


def test_prove_on_the_command_line_and_verify_offline(
    app: Flask, client: FlaskClient, sign: Signer, home: Path, tmp_path: Path
) -> None:
    context = app.extensions["gateway"]
    old_size = context.sequencer.run_once()
    code, old_note = cli(home, "checkpoint")
    assert code == 0
    accept(client, sign, 3)
    new_size = context.sequencer.run_once()

    code, output = cli(home, "prove", "inclusion", "--index", "2")
    assert code == 0, output
    inclusion = json.loads(output)
    assert inclusion == client.get("/log/proof/inclusion?index=2").get_json()
    proof_file = tmp_path / "inclusion.json"
    proof_file.write_text(output)
    code, output = cli(home, "verify-proof", str(proof_file))
    assert code == 0 and output.startswith(f"OK: leaf 2 is in the log of {new_size} entries signed at 20"), output

    with transaction(context.sessions) as session:
        entry = session.scalars(select(AuditEntry.entry).where(AuditEntry.leaf_index == 2)).one()
    (tmp_path / "entry").write_bytes(entry)
    assert cli(home, "verify-proof", str(proof_file), "--entry", str(tmp_path / "entry"))[0] == 0
    (tmp_path / "entry").write_bytes(entry + b" ")
    code, output = cli(home, "verify-proof", str(proof_file), "--entry", str(tmp_path / "entry"))
    assert code == 1 and "FAILED: the entry does not hash to the proof's leaf hash" in output

    tampered = dict(inclusion, hashes=[base64.b64encode(bytes(32)).decode(), *inclusion["hashes"][1:]])
    proof_file.write_text(json.dumps(tampered))
    code, output = cli(home, "verify-proof", str(proof_file))
    assert code == 1 and "FAILED: the inclusion proof of leaf 2 does not lead to the checkpoint's root" in output

    code, output = cli(home, "prove", "consistency", str(old_size), str(new_size))
    assert code == 0, output
    consistency = json.loads(output)
    assert consistency["first_checkpoint"] == old_note
    proof_file.write_text(output)
    assert cli(home, "verify-proof", str(proof_file)) == (
        0,
        f"OK: the log of {old_size} entries is a prefix of the log of {new_size} entries\n",
    )
    # Against checkpoints held apart from the proof; the gateway's certificate given explicitly.
    (tmp_path / "old.note").write_text(old_note)
    consistency["first_checkpoint"] = None
    proof_file.write_text(json.dumps(consistency))
    certificate = str(gateway_key_paths(home / "keys")[1])
    assert cli(home, "verify-proof", str(proof_file), "--certificate", certificate)[0] == 1
    code, output = cli(
        home,
        "verify-proof",
        str(proof_file),
        "--old-checkpoint",
        str(tmp_path / "old.note"),
        "--certificate",
        certificate,
    )
    assert code == 0, output
    forged = old_note.replace(f"\n{old_size}\n", f"\n{old_size + 1}\n")
    (tmp_path / "old.note").write_text(forged)
    code, output = cli(home, "verify-proof", str(proof_file), "--old-checkpoint", str(tmp_path / "old.note"))
    assert code == 1 and "the old checkpoint: the checkpoint's signature does not verify" in output


def test_prove_refusals_on_the_command_line(app: Flask, home: Path) -> None:
    assert cli(home, "prove", "inclusion")[0] == 2  # neither --index nor --leaf-hash
    code, output = cli(home, "prove", "inclusion", "--index", "0")
    assert code == 1 and "no signed checkpoint yet" in output
    size = app.extensions["gateway"].sequencer.run_once()
    code, output = cli(home, "prove", "inclusion", "--index", str(size))
    assert code == 1 and f"leaf {size} is not in a tree of {size} entries" in output
    code, output = cli(home, "prove", "consistency", str(size + 1))
    assert code == 1 and "larger than the second tree" in output
