"""The transfer clock: limits, late leavers, what is overdue, and ``gateway archives overdue``."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree
from sqlalchemy import select

from gateway.archives.deadlines import DISPATCH_OVERDUE, RECEIPT_OVERDUE, Limits, days_late, overdue
from gateway.archives.models import ArchiveTransfer, TransferStatus
from gateway.cli import main
from gateway.clock import BEIJING
from gateway.errors import ConfigurationError
from gateway.sdk.envelope import wrap
from gateway.settings import Settings
from tests.conftest import AGENCY_CHAOYANG, EDUCATION_DEPARTMENT, UNIVERSITY, Signer, example

T0 = datetime(2025, 7, 1, 1, 30, tzinfo=UTC)


def transfer(status: str, **changes: object) -> ArchiveTransfer:
    values: dict[str, object] = {
        "id": 1,
        "identity_hash": "0" * 64,
        "transfer_number": "ZD11000020250001234",
        "holder_id": UNIVERSITY,
        "receiver_id": AGENCY_CHAOYANG,
        "status": status,
    }
    values.update(changes)
    return ArchiveTransfer(**values)


def test_limits_and_late_leavers() -> None:
    limits = Limits()
    assert limits.dispatch_due(T0, leaves_late=False) == T0 + timedelta(days=15)
    assert limits.receipt_due(T0, leaves_late=False) == T0 + timedelta(days=30)
    assert limits.dispatch_due(T0, leaves_late=True) == T0 + timedelta(days=45)
    assert limits.receipt_due(T0, leaves_late=True) == T0 + timedelta(days=60)


def test_limits_come_from_settings(tmp_path: Path) -> None:
    env = {
        "GATEWAY_ARCHIVE_DISPATCH_DAYS": "10",
        "GATEWAY_ARCHIVE_RECEIPT_DAYS": "20",
        "GATEWAY_LATE_LEAVER_EXTRA_DAYS": "5",
    }
    limits = Limits.from_settings(Settings.from_env(env, base_dir=tmp_path))
    assert limits == Limits(10, 20, 5)
    assert Limits.from_settings(Settings.from_env({}, base_dir=tmp_path)) == Limits(15, 30, 30)
    with pytest.raises(ConfigurationError, match="GATEWAY_ARCHIVE_DISPATCH_DAYS"):
        Settings.from_env({"GATEWAY_ARCHIVE_DISPATCH_DAYS": "0"}, base_dir=tmp_path)


def test_days_late_counts_a_started_day() -> None:
    assert days_late(T0, T0) == 0
    assert days_late(T0, T0 + timedelta(hours=1)) == 1
    assert days_late(T0, T0 + timedelta(days=1)) == 1
    assert days_late(T0, T0 + timedelta(days=1, seconds=1)) == 2


def test_dispatch_overdue() -> None:
    due = T0 + timedelta(days=15)
    requested = transfer(TransferStatus.REQUESTED, dispatch_due_at=due)
    assert overdue([requested], due) == []
    [late] = overdue([requested], due + timedelta(days=3))
    assert (late.what, late.days, late.due_at) == (DISPATCH_OVERDUE, 3, due)
    assert (late.transfer_number, late.holder_id, late.receiver_id) == (
        "ZD11000020250001234",
        UNIVERSITY,
        AGENCY_CHAOYANG,
    )


def test_receipt_overdue_and_received_never_overdue() -> None:
    due = T0 + timedelta(days=30)
    dispatched = transfer(TransferStatus.DISPATCHED, dispatch_due_at=T0, receipt_due_at=due)
    assert overdue([dispatched], due - timedelta(seconds=1)) == []
    [late] = overdue([dispatched], due + timedelta(days=10))
    assert (late.what, late.days) == (RECEIPT_OVERDUE, 10)
    received = transfer(TransferStatus.RECEIVED, dispatch_due_at=T0, receipt_due_at=T0)
    assert overdue([received], due + timedelta(days=100)) == []


def test_late_leaver_is_not_overdue_when_others_would_be() -> None:
    limits = Limits()
    on_time = transfer(TransferStatus.REQUESTED, id=1, dispatch_due_at=limits.dispatch_due(T0, False))
    late_leaver = transfer(TransferStatus.REQUESTED, id=2, dispatch_due_at=limits.dispatch_due(T0, True))
    found = overdue([on_time, late_leaver], T0 + timedelta(days=20))
    assert [o.transfer_id for o in found] == [1]
    assert [o.transfer_id for o in overdue([on_time, late_leaver], T0 + timedelta(days=50))] == [1, 2]


# --- gateway archives overdue -------------------------------------------------------------------


@pytest.fixture
def run(home: Path):  # type: ignore[no-untyped-def]
    env = {"GATEWAY_DATA_DIR": str(home / "data"), "GATEWAY_KEYS_DIR": str(home / "keys")}

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)

    return invoke


def post(client: FlaskClient, sign: Signer, name: str, service: str, sender: str, recipient: str) -> None:
    envelope = wrap(example(name), sender=sender, recipient=recipient, service=service, message_id=str(uuid.uuid4()))
    response = client.post("/soap", data=sign(envelope, as_=sender), content_type="text/xml; charset=utf-8")
    assert b"<gw:Status>accepted</gw:Status>" in response.data, etree.tostring(etree.fromstring(response.data))


def days_after(due: datetime, day: date) -> int:
    """Whole days from ``due`` to the end of ``day`` in Beijing time, a started day counting as one."""
    end_of_that_day = datetime(day.year, day.month, day.day, tzinfo=BEIJING) + timedelta(days=1)
    late = end_of_that_day - due
    return late.days + (1 if late % timedelta(days=1) else 0)


def test_overdue_command(app: Flask, client: FlaskClient, sign: Signer, run) -> None:  # type: ignore[no-untyped-def]
    post(client, sign, "destination-registration", "DestinationRegistration", UNIVERSITY, EDUCATION_DEPARTMENT)
    post(client, sign, "registration-filed", "RegistrationFiled", EDUCATION_DEPARTMENT, UNIVERSITY)
    post(client, sign, "archive-transfer-request", "ArchiveTransferRequest", AGENCY_CHAOYANG, UNIVERSITY)
    today = datetime.now(UTC)

    nothing = run("archives", "overdue")
    assert nothing.exit_code == 0, nothing.output
    assert nothing.output.startswith("0 overdue transfer(s)")

    # "On DATE" is the end of that day in Beijing time, whatever the time of day now.
    day = (today + timedelta(days=20)).astimezone(BEIJING).date()
    at = day.isoformat()
    with app.extensions["gateway"].sessions() as session:
        [transfer] = session.scalars(select(ArchiveTransfer))
        assert transfer.dispatch_due_at is not None
        due = transfer.dispatch_due_at
    expected_days = days_after(due, day)
    plain = run("archives", "overdue", "--at", at)
    assert plain.exit_code == 0, plain.output
    [line, summary] = plain.output.splitlines()
    assert "ZD11000020250001234" in line and UNIVERSITY in line and AGENCY_CHAOYANG in line
    assert f"dispatch overdue by {expected_days} day(s)" in line and "Beijing time" in line
    next_day = day + timedelta(days=1)
    assert summary == f"1 overdue transfer(s) on {at} (at the end of that day, {next_day} 00:00 Beijing time)"
    [row] = json.loads(run("archives", "overdue", "--at", at, "--json").output)
    assert row["overdue"] == "dispatch overdue" and row["holder"] == UNIVERSITY and row["receiver"] == AGENCY_CHAOYANG
    assert row["days_overdue"] == expected_days
    assert row["due_at"].endswith("+08:00")
    refused = run("archives", "overdue", "--at", f"{at}T12:00:00")
    assert refused.exit_code == 2 and "does not match the format" in refused.output  # a day, not an instant

    post(client, sign, "archive-transfer-manifest", "ArchiveTransferManifest", UNIVERSITY, AGENCY_CHAOYANG)
    assert run("archives", "overdue", "--at", at).output.startswith("0 overdue transfer(s)")
    later_day = (today + timedelta(days=40)).astimezone(BEIJING).date()
    later = later_day.isoformat()
    with app.extensions["gateway"].sessions() as session:
        [transfer] = session.scalars(select(ArchiveTransfer))
        assert transfer.receipt_due_at is not None
        receipt_due = transfer.receipt_due_at
    [row] = json.loads(run("archives", "overdue", "--at", later, "--json").output)
    assert row["overdue"] == "receipt overdue" and row["days_overdue"] == days_after(receipt_due, later_day)

    post(client, sign, "archive-receipt", "ArchiveReceipt", AGENCY_CHAOYANG, UNIVERSITY)
    assert json.loads(run("archives", "overdue", "--at", later, "--json").output) == []
    everything = run("archives", "overdue", "--at", later).output + json.dumps(row)
    assert "11010520030315041X" not in everything
