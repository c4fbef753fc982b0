"""The SDK's GatewayClient against a served gateway: send, fetch, acknowledge, status, delivery receipt."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from gateway.sdk.client import GatewayClient, GatewayRefusal
from gateway.sdk.receipts import sent_digests
from tests.conftest import EDUCATION_DEPARTMENT, example
from tests.mailbox.helpers import DOCUMENT, SENDER

pytestmark = pytest.mark.slow


def test_a_pull_recipient_and_a_sender_with_the_sdk(gateway_url: str, served_home: Path) -> None:
    keys = served_home / "keys"
    sender = GatewayClient.from_keys(gateway_url, SENDER, keys)
    recipient = GatewayClient.from_keys(gateway_url, EDUCATION_DEPARTMENT, keys)
    sent = sender.send(example(DOCUMENT), recipient=EDUCATION_DEPARTMENT)

    [state] = sender.status(sent.message_id).deliveries
    assert (state.recipient, state.status) == (EDUCATION_DEPARTMENT, "queued")
    with pytest.raises(GatewayRefusal) as refused:
        sender.delivery_receipt(sent.message_id)
    assert refused.value.code == "NOT_YET_DELIVERED"
    with pytest.raises(GatewayRefusal) as foreign:
        recipient.status(sent.message_id)
    assert foreign.value.code == "MESSAGE_UNKNOWN"

    fetched = recipient.fetch(5)
    assert [(d.message_id, d.sender) for d in fetched] == [(sent.message_id, SENDER)]
    assert set(sent_digests(fetched[0].original)) == {"Body", "Timestamp", "Routing"}
    assert recipient.fetch(5) == []
    assert [r.status for r in recipient.acknowledge(fetched)] == ["acknowledged"]
    assert [r.status for r in recipient.acknowledge([(sent.message_id, SENDER)])] == ["already_acknowledged"]

    receipt = sender.delivery_receipt(sent.message_id)
    assert (receipt.message_id, receipt.sender, list(receipt.delivered)) == (
        sent.message_id,
        SENDER,
        [EDUCATION_DEPARTMENT],
    )
    # The Body the sender signed: the digest its acceptance receipt acknowledged.
    assert receipt.body_sha256 == base64.b64decode(sent.receipt.digests["Body"]).hex()
    assert sender.status(sent.message_id).deliveries[0].status == "delivered"
