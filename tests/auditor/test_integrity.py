"""Log integrity: the latest checkpoint, entries not yet integrated, and verification runs from the UI."""

from __future__ import annotations

import html
import re
import time
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from gateway.audit.entries import decode
from gateway.audit.models import AuditEntry
from gateway.auditor.integrity import (
    STALE,
    checkpoint_key,
    integrity_status,
    problems,
    run_verification,
    start_verification,
)
from gateway.auditor.models import AuditVerification, Outcome
from gateway.store.db import transaction
from tests.auditor.helpers import send_story
from tests.conftest import Signer
from tests.web.helpers import csrf_token


def words(client: FlaskClient, path: str) -> str:
    page = client.get(path).get_data(as_text=True)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def verify_now(app: Flask, username: str = "ada") -> AuditVerification:
    """One run, synchronously (what the page's thread does)."""
    context = app.extensions["gateway"]
    with transaction(context.sessions) as session:
        run = start_verification(session, username, context.clock.now())
        assert run is not None
        run_id = run.id
    run_verification(context.sessions, checkpoint_key(context.settings.keys_dir), context.clock, run_id)
    with context.sessions() as session:
        found = session.get(AuditVerification, run_id)
        assert found is not None
        return found


def test_the_page_shows_entries_pending_then_the_signed_checkpoint(
    auditor_app: Flask, auditor: FlaskClient, sign: Signer
) -> None:
    send_story(auditor, sign)
    context = auditor_app.extensions["gateway"]
    with context.sessions() as session:
        before = integrity_status(session)
    assert before.pending == before.entries - before.integrated > 0
    assert f"Not yet integrated {before.pending}" in words(auditor, "/audit/integrity?lang=en")
    size = context.sequencer.run_once()
    text = words(auditor, "/audit/integrity?lang=en")
    with context.sessions() as session:
        after = integrity_status(session)
    assert after.pending == 0 and after.checkpoint is not None and after.checkpoint.size == size
    assert f"Tree size {size}" in text and "Not yet integrated 0" in text
    assert after.checkpoint.root.hex() in text
    assert "graduate-exchange-gateway/audit/v1" in text and "— gateway " in text
    assert "has not been verified from this page yet" in text


def test_a_verification_of_an_intact_log_is_ok_and_is_itself_logged(
    auditor_app: Flask, auditor: FlaskClient, sign: Signer
) -> None:
    send_story(auditor, sign)
    auditor_app.extensions["gateway"].sequencer.run_once()
    with auditor_app.extensions["gateway"].sessions() as session:
        entries = session.scalar(select(func.count()).select_from(AuditEntry))
    run = verify_now(auditor_app)
    assert (run.outcome, run.entries, run.problems, run.started_by) == (Outcome.OK, entries, 0, "ada")
    assert run.checkpoints >= 1 and run.finished_at is not None
    with auditor_app.extensions["gateway"].sessions() as session:
        logged = session.scalars(select(AuditEntry).where(AuditEntry.kind == "audit.verified")).one()
    facts = decode(logged.entry)
    assert (facts["outcome"], facts["entries"], facts["username"], facts["verification"]) == (
        "ok",
        entries,
        "ada",
        run.id,
    )
    text = words(auditor, "/audit/integrity?lang=en")
    assert "Verified OK" in text and f"Entries checked {entries}" in text


def test_a_changed_entry_is_reported_with_its_position(auditor_app: Flask, auditor: FlaskClient, sign: Signer) -> None:
    send_story(auditor, sign)
    context = auditor_app.extensions["gateway"]
    context.sequencer.run_once()
    with transaction(context.sessions) as session:
        accepted = session.scalars(
            select(AuditEntry).where(AuditEntry.kind == "message.accepted").order_by(AuditEntry.leaf_index)
        ).all()
        target = accepted[3]
        position = target.leaf_index
        session.execute(  # someone with database access rewrites who sent a message
            update(AuditEntry)
            .where(AuditEntry.leaf_index == position)
            .values(entry=target.entry.replace(b'"sender":"', b'"sender":"X'))
        )
    run = verify_now(auditor_app)
    assert run.outcome == Outcome.PROBLEMS and run.problems >= 1
    found = problems(run)
    assert found[0].position == position and "changed" in found[0].what
    text = words(auditor, "/audit/integrity?lang=en")
    assert "Problems found: the log has been altered" in text
    assert f"{position} the entry was changed" in text


def test_the_button_runs_a_verification_in_the_background(auditor_app: Flask, auditor: FlaskClient) -> None:
    token = csrf_token(auditor, "/audit/integrity")
    response = auditor.post("/audit/integrity/verify", data={"csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == "/audit/integrity"
    deadline = time.monotonic() + 20
    while "Verified OK" not in (text := words(auditor, "/audit/integrity?lang=en")):
        assert time.monotonic() < deadline, text
        time.sleep(0.1)
    assert "ada" in text


def test_one_run_at_a_time_unless_the_running_one_died(auditor_app: Flask, auditor: FlaskClient) -> None:
    context = auditor_app.extensions["gateway"]
    now = context.clock.now()
    with transaction(context.sessions) as session:
        first = start_verification(session, "ada", now)
        assert first is not None
        assert start_verification(session, "ada", now + timedelta(seconds=30)) is None
    page = auditor.get("/audit/integrity?lang=en")
    assert page.headers["Refresh"] == "3"  # the page follows the run without a script
    assert "Verifying: 0 of" in words(auditor, "/audit/integrity?lang=en")
    token = csrf_token(auditor, "/audit/integrity")
    auditor.post("/audit/integrity/verify", data={"csrf_token": token})
    assert "A verification is already running." in words(auditor, "/audit/integrity?lang=en")
    with transaction(context.sessions) as session:
        second = start_verification(session, "ada", now + STALE + timedelta(seconds=1))
        assert second is not None
        stale = session.get(AuditVerification, first.id)
        assert stale is not None and stale.outcome == Outcome.ERROR and "interrupted" in (stale.error or "")
