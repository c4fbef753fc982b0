"""Overdue archive transfers in the auditor UI: the same judgement as `gateway archives overdue`."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from gateway.archives.models import ArchiveTransfer, TransferStatus
from gateway.archives.overdue import overdue_transfers
from gateway.cli import main
from gateway.clock import BEIJING
from gateway.privacy import IdentityHasher
from gateway.store.db import transaction
from tests.auditor.helpers import GRADUATE_A, GRADUATE_B, NOBODY
from tests.conftest import AGENCY_CHAOYANG, SOE_EMPLOYER, UNIVERSITY


def transfer(number: str, status: str, due: datetime, identity_hash: str, receiver: str) -> ArchiveTransfer:
    return ArchiveTransfer(
        identity_hash=identity_hash,
        transfer_number=number,
        holder_id=UNIVERSITY,
        receiver_id=receiver,
        leaves_late=False,
        status=status,
        requested_at=due - timedelta(days=15),
        dispatch_due_at=due if status == TransferStatus.REQUESTED else due - timedelta(days=30),
        dispatched_at=None if status == TransferStatus.REQUESTED else due - timedelta(days=30),
        receipt_due_at=None if status == TransferStatus.REQUESTED else due,
        received_at=due if status == TransferStatus.RECEIVED else None,
        documents=3,
        documents_missing=0,
        documents_damaged=0,
        updated_at=due,
    )


def test_overdue_transfers_are_listed_most_overdue_first_without_identities(
    auditor_app: Flask, auditor: FlaskClient
) -> None:
    context = auditor_app.extensions["gateway"]
    now = context.clock.now()
    hasher = IdentityHasher.from_file(context.settings.keys_dir / "secrets" / "identity-hash.key")
    with transaction(context.sessions) as session:
        session.add_all(
            [
                transfer(
                    "ZD-LATE-DISPATCH",
                    TransferStatus.REQUESTED,
                    now - timedelta(days=3, hours=1),
                    hasher(GRADUATE_A),
                    AGENCY_CHAOYANG,
                ),
                transfer(
                    "ZD-LATE-RECEIPT",
                    TransferStatus.DISPATCHED,
                    now - timedelta(days=9, hours=23),  # 10 days late, counting the day begun
                    hasher(GRADUATE_B),
                    SOE_EMPLOYER,
                ),
                # A graduate has one open transfer at a time: this one is a third graduate's.
                transfer(
                    "ZD-NOT-YET", TransferStatus.REQUESTED, now + timedelta(days=2), hasher(NOBODY), AGENCY_CHAOYANG
                ),
                transfer(
                    "ZD-RECEIVED", TransferStatus.RECEIVED, now - timedelta(days=40), hasher(GRADUATE_B), SOE_EMPLOYER
                ),
            ]
        )
    page = html.unescape(auditor.get("/audit/archives/overdue?lang=en").get_data(as_text=True))
    rows = re.findall(
        r'<td class="mono"[^>]*>(ZD-[A-Z-]+)</td>.*?<td[^>]*>(dispatch overdue|receipt overdue)</td>'
        r'.*?<td class="number"[^>]*>(\d+)</td>',
        page,
        re.S,
    )
    assert rows == [("ZD-LATE-RECEIPT", "receipt overdue", "10"), ("ZD-LATE-DISPATCH", "dispatch overdue", "4")]
    with context.sessions() as session:
        assert [(o.transfer_number, o.days) for o in overdue_transfers(session, now)] == [
            ("ZD-LATE-RECEIPT", 10),
            ("ZD-LATE-DISPATCH", 4),
        ]
    assert "2 overdue at" in page and "北京市朝阳区人才服务中心" in page
    for secret in (GRADUATE_A, GRADUATE_B, hasher(GRADUATE_A), hasher(GRADUATE_B)):
        assert secret not in page
    # judged at the end of a later day, the transfer not yet due is late too
    later = (now + timedelta(days=5)).astimezone(UTC).date()
    judged = html.unescape(auditor.get(f"/audit/archives/overdue?at={later}&lang=en").get_data(as_text=True))
    assert "ZD-NOT-YET" in judged and "3 overdue at" in judged and "ZD-RECEIVED" not in judged


def test_a_bad_day_is_a_clear_message(auditor: FlaskClient) -> None:
    response = auditor.get("/audit/archives/overdue?at=2026-06-31&lang=en")
    assert response.status_code == 400
    assert "“2026-06-31” is not a date" in html.unescape(response.get_data(as_text=True))


def test_the_page_and_the_command_judge_a_day_alike(auditor_app: Flask, auditor: FlaskClient) -> None:
    """ "On DATE" is the end of that day in Beijing time for the auditor UI and `gateway archives overdue --at`."""
    context = auditor_app.extensions["gateway"]
    now = context.clock.now()
    hasher = IdentityHasher.from_file(context.settings.keys_dir / "secrets" / "identity-hash.key")
    day = (now + timedelta(days=3)).astimezone(BEIJING).date()
    end = datetime(day.year, day.month, day.day, tzinfo=BEIJING) + timedelta(days=1)
    with transaction(context.sessions) as session:
        session.add_all(
            [  # due a minute before and a minute after that day ends (Beijing time)
                transfer(
                    "ZD-DUE-THAT-DAY",
                    TransferStatus.REQUESTED,
                    end - timedelta(minutes=1),
                    hasher(GRADUATE_A),
                    AGENCY_CHAOYANG,
                ),
                transfer(
                    "ZD-DUE-NEXT-DAY",
                    TransferStatus.REQUESTED,
                    end + timedelta(minutes=1),
                    hasher(GRADUATE_B),
                    SOE_EMPLOYER,
                ),
            ]
        )
    page = html.unescape(auditor.get(f"/audit/archives/overdue?at={day}&lang=en").get_data(as_text=True))
    assert "ZD-DUE-THAT-DAY" in page and "ZD-DUE-NEXT-DAY" not in page
    env = {"GATEWAY_DATA_DIR": str(context.settings.data_dir), "GATEWAY_KEYS_DIR": str(context.settings.keys_dir)}
    result = CliRunner().invoke(main, ["archives", "overdue", "--at", day.isoformat(), "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert [(row["transfer_number"], row["days_overdue"]) for row in json.loads(result.output)] == [
        ("ZD-DUE-THAT-DAY", 1)
    ]
