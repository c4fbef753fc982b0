"""``gateway demo`` end to end: the season played by the agency systems against a served gateway, and
its summary checked against the gateway's database by queries of this test's own."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from datetime import date, datetime
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
from gateway.clock import end_of_day
from gateway.privacy import mask_identity, redact
from gateway.settings import Settings
from gateway.web.app import create_app
from tests.conftest import PRIVATE_EMPLOYER
from tests.web.helpers import post_form

GRADUATES = 12
PLANNED = {
    "AGREEMENT_OFFER_EXPIRED": 1,
    "ARCHIVE_INCOMPLETE": 1,  # the transcript left out, then put in
    "ARCHIVE_RULE_VIOLATION": 2,  # by ordinary post; carried by the graduate
    "EMPLOYER_UNIT_NATURE_MISMATCH": 1,  # the hospital typed as an enterprise, then corrected
    "AUTHORISATION_EXHAUSTED": 1,
    "AUTHORISATION_INSUFFICIENT_SCOPE": 1,
    "AUTHORISATION_REVOKED": 1,
    "CERT_REVOKED": 1,
    "CODE_INVALID": 1,
}
AUTHORISATION_REFUSALS = {k: v for k, v in PLANNED.items() if k.startswith("AUTHORISATION_")}


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], subprocess.CompletedProcess[str]]:
    folder = tmp_path_factory.mktemp("demo")
    home, summary = folder / "home", folder / "summary.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    command = [sys.executable, "-m", "gateway", "demo", "--graduates", str(GRADUATES), "--seed", "7"]
    command += ["--home", str(home), "--port", "0", "--summary-json", str(summary), "--exit"]
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
        "ArchiveTransferRequest", "ArchiveTransferManifest", "ArchiveReceipt", "GraduateVerificationRequest",
    }  # fmt: skip
    # One sent back and sent again complete; one corrected once the graduate signed an agreement, filed again.
    assert accepted["DestinationRegistration"] == GRADUATES + 2
    assert accepted["RegistrationFiled"] == GRADUATES + 1
    answered = database.scalar(
        text(
            "SELECT count(*) FROM grant_uses u JOIN messages m ON u.message_pk = m.id "
            "WHERE u.outcome = 'used' AND m.service = 'GraduateVerificationRequest'"
        )
    )
    verification = next(line for line in summary["services"] if line["service"] == "GraduateVerificationRequest")
    assert verification["answered"] == answered == accepted["GraduateVerificationRequest"]
    assert verification["delivered"] == verification["pending"] == 0  # answered by the gateway, delivered to nobody


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
    assert at == end_of_day(date.fromisoformat(summary["overdue_on"]))  # "on that day": its end, Beijing time
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
    assert set(pages) == {"graduate portal", "auditor UI", "log checkpoint", "directory", "WSDL"}
    for label, path in (
        ("graduate portal", "/graduate/"),
        ("auditor UI", "/audit/"),
        ("log checkpoint", "/log/checkpoint"),
        ("directory", "/directory"),
    ):
        assert pages[label]["available"] and path in rules
        assert pages[label]["url"].endswith(path)


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


# Any 18-character run of the identity number's shape (GB 11643), valid or not: only a registered
# participant id (a credit code may be all digits) may show it in a log.
IDENTITY_SHAPE = re.compile(r"(?<![0-9A-Z])[0-9]{17}[0-9X](?![0-9A-Z])")


def test_the_logs_have_a_json_line_per_request_and_attempt_and_no_identity_number_of_any_shape(
    played: Any, database: Session
) -> None:
    home, _, result = played
    participants = set(database.scalars(text("SELECT id FROM participants")))
    logs = {
        "stdout": result.stdout,
        "stderr": result.stderr,
        **{path.name: path.read_text(encoding="utf-8") for path in sorted(home.glob("*.log"))},
    }
    for name, output in logs.items():
        shaped = set(IDENTITY_SHAPE.findall(output)) - participants
        assert not shaped, f"{name} shows {len(shaped)} identity-number-shaped strings"
    lines = [json.loads(line) for line in logs["serve.log"].splitlines() if line.startswith("{")]
    soap = ("request", "POST", "/soap")
    requests = [line for line in lines if (line["event"], line.get("method"), line.get("path")) == soap]
    attempts = [line for line in lines if line["event"] == "delivery_attempt"]
    # The graduates' answers from the portal are sent by the gateway itself (the platform), not posted to /soap.
    platform = Settings.from_env({}).platform_id
    accepted = database.scalar(text("SELECT count(*) FROM messages WHERE sender_id != :p"), {"p": platform})
    assert sum(1 for line in requests if line["outcome"] == "accepted") == accepted
    assert all(
        {"message_id", "sender", "service", "duration_ms"} <= line.keys()
        for line in requests
        if line["outcome"] == "accepted"
    )
    assert {line["fault_code"] for line in requests if line["outcome"] == "refused"} >= set(PLANNED)
    delivered = database.scalar(text("SELECT count(*) FROM deliveries WHERE status = 'delivered' AND mode = 'push'"))
    assert sum(1 for line in attempts if line["outcome"] == "delivered") == delivered


def test_grant_uses_by_outcome_and_fault_code_are_the_databases_and_the_audit_logs(
    played: Any, database: Session
) -> None:
    _, summary, _ = played
    outcomes = dict(database.execute(text("SELECT outcome, count(*) FROM grant_uses GROUP BY outcome")).all())
    codes = dict(
        database.execute(
            text("SELECT fault_code, count(*) FROM grant_uses WHERE outcome = 'refused' GROUP BY fault_code")
        ).all()
    )
    entries = [
        (kind, json.loads(entry))
        for kind, entry in database.execute(
            text("SELECT kind, entry FROM audit_entries WHERE kind IN ('grant.used', 'grant.refused')")
        ).all()
    ]
    audited = Counter(kind.removeprefix("grant.") for kind, _ in entries)
    audited_codes = Counter(facts["fault"] for kind, facts in entries if kind == "grant.refused")
    assert summary["grant_uses"] == outcomes == dict(audited)
    assert summary["grant_refusals"] == codes == dict(audited_codes) == AUTHORISATION_REFUSALS
    assert all(facts["fault"] is None for kind, facts in entries if kind == "grant.used")
    # Every refused use is also a refused message, and every planned one is there.
    refused_messages = {k: v for k, v in summary["refused_by_code"].items() if k.startswith("AUTHORISATION_")}
    assert refused_messages == codes
    # The story's graduates granted five verifiers: one used twice (exhausted), one revoked after a use; and
    # the demo graduate, for the visitor, an active grant to the hukou office.
    grants = Counter(
        state
        for (state,) in database.execute(
            text(
                "SELECT CASE WHEN status = 'revoked' THEN 'revoked' WHEN uses >= max_uses THEN 'exhausted' "
                "ELSE status END FROM grants"
            )
        ).all()
    )
    assert summary["grants"] == dict(grants) == {"exhausted": 4, "revoked": 1, "active": 1}
    accounts = database.scalar(text("SELECT count(*) FROM graduate_accounts"))
    assert summary["graduate_accounts"] == accounts == 6


def test_verification_answers_and_the_facts_disclosed_are_the_grant_uses(played: Any, database: Session) -> None:
    _, summary, _ = played
    rows = database.execute(
        text(
            "SELECT p.kind, u.facts FROM grant_uses u JOIN participants p ON p.id = u.verifier_id "
            "WHERE u.outcome = 'used' AND u.message_pk IS NOT NULL"
        )
    ).all()
    assert summary["verification_answers"] == dict(Counter(kind for kind, _ in rows))
    assert summary["verification_answers"] == {
        "employer": 2,
        "household_registration_office": 2,
        "talent_service_agency": 1,
    }
    disclosed = Counter(fact for _, facts in rows for fact in facts.split(","))
    assert summary["facts_disclosed"] == dict(disclosed)
    # No use disclosed more than its grant allowed.
    uses = database.execute(
        text("SELECT u.facts, g.facts FROM grant_uses u JOIN grants g ON g.id = u.grant_id WHERE u.outcome = 'used'")
    ).all()
    assert uses and all(set(used.split(",")) <= set(granted.split(",")) for used, granted in uses)


def test_answers_from_the_portal_reach_the_university_which_reviews_and_corrects(
    played: Any, database: Session
) -> None:
    home, summary, _ = played
    platform = Settings.from_env({}, base_dir=home).platform_id
    sent = dict(
        database.execute(
            text(
                "SELECT p.kind, count(*) FROM messages m JOIN participants p ON p.id = m.recipient_id "
                "WHERE m.sender_id = :platform AND m.service = 'AgreementResponse' GROUP BY p.kind"
            ),
            {"platform": platform},
        ).all()
    )
    assert summary["portal_answers"] == sent == {"employer": 2, "university": 2}  # one accepted, one declined
    undelivered = database.scalar(
        text(
            "SELECT count(*) FROM deliveries d JOIN messages m ON d.message_pk = m.id "
            "WHERE m.sender_id = :platform AND d.status <> 'delivered'"
        ),
        {"platform": platform},
    )
    assert undelivered == 0
    # The accepted one was reviewed (signed); the graduate's registration now says so and is filed again.
    corrected = database.execute(
        text("SELECT destination_code, status FROM registrations WHERE registration_id LIKE '%-000002'")
    ).one()
    assert tuple(corrected) == ("10", "filed")


def test_the_demo_says_it_stops_and_how_to_point_the_command_line_at_its_home(played: Any) -> None:
    home, _, result = played
    assert "!!! The demo stops now" in result.stdout and "--keep-running" in result.stdout
    assert f"export GATEWAY_DATA_DIR={home / 'data'}" in result.stdout
    assert f"export GATEWAY_KEYS_DIR={home / 'keys'}" in result.stdout
    progress = result.stderr.replace("\r", "\n").splitlines()
    assert progress and max(len(line) for line in progress) <= 80, max(progress, key=len)


def test_the_auditor_and_the_demo_graduate_can_sign_in_with_what_the_demo_gives(played: Any, database: Session) -> None:
    home, summary, result = played
    sign_ins = summary["sign_ins"]
    assert sign_ins["auditor"] == "demo.auditor" and "auditor_password" not in sign_ins  # the JSON keeps no password
    role = database.scalar(text("SELECT role FROM staff_users WHERE username = 'demo.auditor'"))
    assert role == "auditor"
    credentials = Path(sign_ins["credentials_file"])
    assert credentials.parent == home and credentials.stat().st_mode & 0o777 == 0o600
    lines = credentials.read_text(encoding="utf-8").splitlines()[1:]
    fields = {key: value.strip() for key, value in (line.split(":", 1) for line in lines)}
    number, graduate_password = fields["graduate identity number"], fields["graduate password"]
    auditor_password = fields["auditor password"]
    assert mask_identity(number) == sign_ins["graduate_number_masked"] and number not in result.stdout
    assert f"demo.auditor / {auditor_password}" in result.stdout
    app = create_app(Settings.from_env({}, base_dir=home))
    try:
        client = app.test_client()
        response = post_form(client, "/graduate/sign-in", {"identity_number": number, "password": graduate_password})
        assert response.status_code == 302 and response.headers["Location"].endswith("/graduate/")  # type: ignore[attr-defined]
        history = client.get("/graduate/history").get_data(as_text=True)
        assert "AUTHORISATION_REVOKED" in history  # the demo graduate revoked a grant; the next request was refused
        # Every page has something to show: an open offer, an active grant, an archive in transit, notices.
        offers = client.get("/graduate/offers").get_data(as_text=True)
        assert "/accept" in offers and "/decline" in offers
        grants = client.get("/graduate/grants/").get_data(as_text=True)
        assert 'class="status-ok">有效' in grants and 'class="status-bad">已撤销' in grants
        assert "转递途中" in client.get("/graduate/archive").get_data(as_text=True)
        assert "已备案" in client.get("/graduate/registration").get_data(as_text=True)
        assert "档案已寄出" in client.get("/graduate/notices").get_data(as_text=True)
        staff = app.test_client()
        response = post_form(staff, "/staff/sign-in", {"username": "demo.auditor", "password": auditor_password})
        assert response.status_code == 302  # type: ignore[attr-defined]
        assert staff.get("/audit/").status_code == 200
    finally:
        app.extensions["gateway"].engine.dispose()
