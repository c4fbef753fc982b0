"""The audit log end to end: accepted messages are recorded with their receipt's position, the
sequencer integrates and signs, and `gateway audit verify` finds every kind of tampering."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree
from sqlalchemy import delete, select, update

from gateway.audit.entries import AuditEvent, decode
from gateway.audit.merkle import inclusion_proof, leaf_hash, verify_inclusion
from gateway.audit.models import AuditCheckpoint, AuditEntry
from gateway.audit.nodes import DbNodeReader
from gateway.cli import main
from gateway.store.db import transaction
from tests.conftest import EDUCATION_DEPARTMENT, UNIVERSITY, Signer
from tests.domain.helpers import NS


def logged(app: Flask) -> int:
    """Entries already in the log (``gateway init --demo`` records its registry changes)."""
    with transaction(app.extensions["gateway"].sessions) as session:
        return len(list(session.scalars(select(AuditEntry.leaf_index))))


def accept(client: FlaskClient, sign: Signer, count: int) -> list[etree._Element]:
    from gateway.sdk.envelope import wrap
    from tests.conftest import example

    receipts = []
    for _ in range(count):
        data = sign(
            wrap(
                example("destination-registration"),
                sender=UNIVERSITY,
                recipient=EDUCATION_DEPARTMENT,
                service="DestinationRegistration",
            ),
            as_=UNIVERSITY,
        )
        body = etree.fromstring(client.post("/soap", data=data, content_type="text/xml").data)
        receipt = body.find(".//gw:Receipt", NS)
        assert receipt is not None, etree.tostring(body)
        receipts.append(receipt)
    return receipts


def audit(home: Path, *args: str) -> tuple[int, str]:
    env = {"GATEWAY_DATA_DIR": str(home / "data"), "GATEWAY_KEYS_DIR": str(home / "keys")}
    result = CliRunner().invoke(main, ["audit", *args], env=env)
    return result.exit_code, result.output


def test_receipts_name_their_entry_and_proofs_verify_against_the_checkpoint(
    app: Flask, client: FlaskClient, sign: Signer
) -> None:
    before = logged(app)
    receipts = accept(client, sign, 5)
    positions = [
        (
            int(r.findtext("gw:LogPosition/gw:LeafIndex", namespaces=NS) or "-1"),
            bytes.fromhex(r.findtext("gw:LogPosition/gw:LeafHash", namespaces=NS) or ""),
        )
        for r in receipts
    ]
    assert [p[0] for p in positions] == [before + i for i in range(5)]
    context = app.extensions["gateway"]
    assert context.sequencer.run_once() == before + 5
    assert context.sequencer.run_once() == 0  # nothing new, no new checkpoint
    with transaction(context.sessions) as session:
        [point] = session.scalars(select(AuditCheckpoint))
        entries = list(
            session.scalars(select(AuditEntry).where(AuditEntry.leaf_index >= before).order_by(AuditEntry.leaf_index))
        )
        for (index, hashed), entry in zip(positions, entries, strict=True):
            assert leaf_hash(entry.entry) == hashed
            facts = decode(entry.entry)
            assert facts["kind"] == "message.accepted" and facts["sender"] == UNIVERSITY
            proof = inclusion_proof(DbNodeReader(session), index, point.size)
            assert verify_inclusion(hashed, index, point.size, proof, point.root)


def test_identity_numbers_never_enter_an_entry() -> None:
    event = AuditEvent("grant.used", datetime(2026, 6, 1, tzinfo=UTC), {"error": "bad 11010519491231002X here"})
    assert b"11010519491231002X" not in event.encode()
    assert decode(event.encode())["error"] == "bad [identity number] here"
    with pytest.raises(ValueError, match="must be a string"):
        AuditEvent("x", datetime(2026, 6, 1, tzinfo=UTC), {"bad": 1.5}).encode()  # type: ignore[dict-item]


@pytest.mark.parametrize("tampering", ["change", "delete", "swap"])
def test_verify_reports_tampering_with_its_position(
    app: Flask, client: FlaskClient, sign: Signer, home: Path, tampering: str
) -> None:
    before = logged(app)
    accept(client, sign, 6)
    context = app.extensions["gateway"]
    context.sequencer.run_once()
    code, output = audit(home, "verify", "--json")
    assert code == 0, output
    assert json.loads(output.splitlines()[-1]) == {
        "ok": True,
        "entries": before + 6,
        "checkpoints": 1,
        "published": 1,
        "kept": 0,
        "problems": [],
    }
    with transaction(context.sessions) as session:
        if tampering == "change":
            entry = session.get(AuditEntry, before + 3)
            assert entry is not None
            changed = entry.entry.replace(b'"message.accepted"', b'"message.refused"')
            session.execute(
                update(AuditEntry)
                .where(AuditEntry.leaf_index == before + 3)
                .values(entry=changed, leaf_hash=leaf_hash(changed))
            )
        elif tampering == "delete":
            session.execute(delete(AuditEntry).where(AuditEntry.leaf_index == before + 2))
        else:
            first, second = session.get(AuditEntry, before + 1), session.get(AuditEntry, before + 4)
            assert first is not None and second is not None
            swapped = {before + 1: (second.entry, second.leaf_hash), before + 4: (first.entry, first.leaf_hash)}
            for index, (entry_bytes, hashed) in swapped.items():
                session.execute(
                    update(AuditEntry).where(AuditEntry.leaf_index == index).values(entry=entry_bytes, leaf_hash=hashed)
                )
    code, output = audit(home, "verify", "--json")
    assert code == 1
    report = json.loads(output.splitlines()[-1])
    positions = {p["position"] for p in report["problems"]}
    expected = before + {"change": 3, "delete": 2, "swap": 1}[tampering]
    assert expected in positions, report
    assert any(p["position"] == before + 6 for p in report["problems"])  # the checkpoint no longer matches


def test_refusals_and_deliveries_are_recorded_too(app: Flask, client: FlaskClient) -> None:
    client.post("/soap", data=b"<not-soap/>", content_type="text/xml")
    with transaction(app.extensions["gateway"].sessions) as session:
        [entry] = session.scalars(select(AuditEntry).where(AuditEntry.kind == "message.refused"))
        facts = decode(entry.entry)
    assert (facts["kind"], facts["code"]) == ("message.refused", "SOAP_ENVELOPE_INVALID")


def test_sequence_and_checkpoint_commands(app: Flask, client: FlaskClient, sign: Signer, home: Path) -> None:
    assert audit(home, "checkpoint")[0] == 1
    accept(client, sign, 2)
    size = logged(app)
    assert audit(home, "sequence") == (0, f"integrated to {size} entries\n")
    code, note = audit(home, "checkpoint")
    assert code == 0 and note.splitlines()[:2] == ["graduate-exchange-gateway/audit/v1", str(size)]


def test_registry_changes_are_in_the_log(app: Flask) -> None:
    with transaction(app.extensions["gateway"].sessions) as session:
        kinds = {e.kind for e in session.scalars(select(AuditEntry))}
    assert {"registry.participant_added", "registry.certificate_registered"} <= kinds
