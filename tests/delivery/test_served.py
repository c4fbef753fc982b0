"""The embedded default delivers by itself: `gateway serve` runs the in-process worker and sweep.

A recipient with push delivery is registered on the command line, a message is sent with
`gateway send`, and `gateway deliveries show` reports it delivered once the recipient acknowledged.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from tests.conftest import UNIVERSITY
from tests.delivery.recipients import RecordingRecipient, serve_recipient
from tests.serving import served_gateway
from tests.test_cli_send import gateway

pytestmark = pytest.mark.slow
PUSH_RECIPIENT = "91110000600037341L"


@pytest.mark.parametrize("workers", ["1", "2"])
def test_served_gateway_pushes_accepted_messages_and_reports_them(
    template_home: Path, tmp_path: Path, workers: str
) -> None:
    """With two worker processes, each runs its in-process delivery and sweep: the message is pushed
    once all the same (one claims it)."""
    home = tmp_path / "home"
    shutil.copytree(template_home, home)
    recipient = RecordingRecipient()
    with serve_recipient(recipient, (home / "keys" / "ca" / "ca.cert.pem",)) as endpoint:
        added = gateway(
            home,
            "participants",
            "add",
            PUSH_RECIPIENT,
            "--name",
            "示范国有企业",
            "--kind",
            "employer",
            "--region",
            "110105",
            "--unit-nature",
            "31",
            "--archive-rights",
            "yes",
            "--delivery",
            "push",
            "--endpoint",
            endpoint,
            "--push-timeout",
            "5",
            "--max-attempts",
            "3",
        )
        assert added.returncode == 0, added.stderr
        with served_gateway(home, {"GATEWAY_WORKERS": workers}) as base:
            document = home / "registration.xml"
            document.write_text(
                (Path(__file__).parents[2] / "examples" / "destination-registration.xml").read_text("utf-8"),
                encoding="utf-8",
            )
            granted = gateway(
                home,
                "access",
                "grant",
                UNIVERSITY,
                "DestinationRegistration",
                "--to",
                PUSH_RECIPIENT,
                "--reason",
                "delivery test",
            )
            assert granted.returncode == 0, granted.stderr
            sent = gateway(home, "send", str(document), "--as", UNIVERSITY, "--to", PUSH_RECIPIENT, "--url", base)
            assert sent.returncode == 0, sent.stderr
            message_id = sent.stdout.split()[1]
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not recipient.received:
                time.sleep(0.2)
            assert [d.message_id for d in recipient.received] == [message_id]
            time.sleep(0.5 if workers == "1" else 6)  # two workers: past a sweep of each (every 5 s)
            assert len(recipient.received) == 1
            shown = json.loads(gateway(home, "deliveries", "show", message_id, "--json").stdout)
            assert [(d["status"], d["attempts"], d["mode"]) for d in shown] == [("delivered", 1, "push")]
            listed = gateway(home, "deliveries", "list", "--status", "delivered")
            assert message_id in listed.stdout
            assert "0 deliveries" in gateway(home, "deliveries", "dead-letters").stdout
