"""``gateway demo`` end to end: the season played by the agency systems against a served gateway, and
its summary checked against the gateway's database by queries of this test's own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

from gateway.archives.deadlines import overdue
from gateway.archives.models import ArchiveTransfer
from gateway.audit.verify import verify_log
from gateway.privacy import redact
from gateway.settings import Settings
from gateway.web.app import create_app
from tests.conftest import PRIVATE_EMPLOYER

GRADUATES = 12
PLANNED = {"AGREEMENT_OFFER_EXPIRED": 1, "ARCHIVE_RULE_VIOLATION": 1, "CERT_REVOKED": 1, "CODE_INVALID": 1}


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], subprocess.CompletedProcess[str]]:
    folder = tmp_path_factory.mktemp("demo")
    home, summary = folder / "home", folder / "summary.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    command = [sys.executable, "-m", "gateway", "demo", "--graduates", str(GRADUATES), "--seed", "7"]
    command += ["--home", str(home), "--port", "0", "--summary-json", str(summary)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return home, json.loads(summary.read_text(encoding="utf-8")), result


@pytest.fixture(scope="module")
def database(played: tuple[Path, dict[str, Any], Any]) -> Session:
    engine = create_engine(f"sqlite:///{played[0] / 'data' / 'gateway.db'}")
    with Session(engine) as session:
        yield session  # type: ignore[misc]
    engine.dispose()


pytestmark = pytest.mark.slow


def test_messages_and_deliveries_per_service_are_the_databases(played: Any, database: Session) -> None:
    _, summary, _ = played
    accepted = dict(database.execute(text("SELECT service, count(*) FROM messages GROUP BY service")).all())
    assert {line["service"]: line["accepted"] for line in summary["services"]} == accepted
    delivered = dict(
        database.execute(
            text(
                "SELECT m.service, count(*) FROM deliveries d JOIN messages m ON d.message_pk = m.id "
                "WHERE d.status = 'delivered' GROUP BY m.service"
            )
        ).all()
    )
    assert {line["service"]: line["delivered"] for line in summary["services"] if line["delivered"]} == delivered
    statuses = dict(database.execute(text("SELECT status, count(*) FROM deliveries GROUP BY status")).all())
    assert summary["deliveries"] == statuses == {"delivered": sum(delivered.values())}
    business = {line["service"] for line in summary["services"] if not line["plumbing"]}
    assert business == {
        "AgreementOffer", "AgreementResponse", "AgreementReview", "AgreementCancellation",
        "AgreementCancellationReview", "DestinationRegistration", "RegistrationFiled", "RegistrationRejected",
        "ArchiveTransferRequest", "ArchiveTransferManifest", "ArchiveReceipt",
    }  # fmt: skip
    assert accepted["DestinationRegistration"] == GRADUATES + 1  # one sent back, corrected and sent again
    assert accepted["RegistrationFiled"] == GRADUATES


def test_refusals_by_fault_code_are_the_audit_logs_and_exactly_the_planned_ones(played: Any, database: Session) -> None:
    _, summary, _ = played
    refused = Counter(
        json.loads(entry)["code"]
        for entry in database.scalars(text("SELECT entry FROM audit_entries WHERE kind = 'message.refused'"))
    )
    assert summary["refused_by_code"] == dict(refused) == summary["planned_refusals"] == PLANNED
    revoked = next(line for line in summary["refused"] if line["code"] == "CERT_REVOKED")
    assert revoked["senders"] == [PRIVATE_EMPLOYER] and revoked["services"] == ["AgreementCancellation"]
    certificates = database.scalar(
        text("SELECT count(*) FROM participant_certificates WHERE participant_id = :id"), {"id": PRIVATE_EMPLOYER}
    )
    assert certificates == 2  # the revoked one and its replacement


def test_overdue_archives_are_the_archive_clocks(played: Any, database: Session) -> None:
    _, summary, _ = played
    at = datetime.fromisoformat(summary["overdue_at"])
    found = overdue(database.scalars(select(ArchiveTransfer)), at)
    assert [(o.transfer_number, o.what, o.days) for o in found] == [
        (line["transfer_number"], line["what"], line["days"]) for line in summary["overdue"]
    ]
    assert sorted(o.what for o in found) == ["dispatch overdue", "receipt overdue"]
    late = list(database.scalars(select(ArchiveTransfer).where(ArchiveTransfer.leaves_late.is_(True))))
    assert summary["extended_for_late_leavers"] == 1 and late and not overdue(late, at)
    statuses = dict(database.execute(text("SELECT status, count(*) FROM archive_transfers GROUP BY status")).all())
    assert summary["transfers"] == statuses == {"received": GRADUATES - 3, "dispatched": 1, "requested": 2}
    assert summary["registrations"] == {"filed": GRADUATES}


def test_the_audit_log_verifies_as_the_summary_says(played: Any, database: Session) -> None:
    home, summary, _ = played
    certificate = x509.load_pem_x509_certificate((home / "keys" / "gateway" / "cert.pem").read_bytes())
    key = certificate.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    report = verify_log(database, key)
    entries = database.scalar(text("SELECT count(*) FROM audit_entries"))
    assert report.ok and summary["audit_ok"] and summary["audit_problems"] == []
    assert summary["audit_entries"] == report.entries == entries
    assert summary["audit_checkpoints"] == report.checkpoints >= 1
    assert summary["ok"] is True


def test_the_pages_offered_are_the_ones_the_app_routes(played: Any) -> None:
    home, summary, _ = played
    app = create_app(Settings.from_env({}, base_dir=home))
    try:
        rules = {rule.rule for rule in app.url_map.iter_rules()}
    finally:
        app.extensions["gateway"].engine.dispose()
    pages = {page["label"]: page for page in summary["pages"]}
    assert pages["directory"]["available"] and pages["WSDL"]["available"]
    for label, prefix in (("portal", "/graduate/"), ("auditor UI", "/audit/")):
        assert pages[label]["available"] == any(rule.startswith(prefix) for rule in rules)
        assert pages[label]["url"].endswith(prefix)
    assert {step["step"] for step in summary["not_built"]} == {"grant", "verify-with-token", "revoke-grant"}


def test_no_identity_number_reaches_the_terminal_or_the_logs(played: Any) -> None:
    home, _, result = played
    for name, output in (
        ("stdout", result.stdout),
        ("stderr", result.stderr),
        ("demo.log", (home / "demo.log").read_text(encoding="utf-8")),
        ("serve.log", (home / "serve.log").read_text(encoding="utf-8")),
    ):
        assert redact(output) == output, f"an identity number in {name}"
    assert "season" in result.stderr  # the progress bar
    assert "audit log:" in result.stdout and "verified" in result.stdout
