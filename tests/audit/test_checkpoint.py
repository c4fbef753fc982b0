"""Checkpoints round-trip, and any change to the text or the signature is caught."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.audit.checkpoint import Checkpoint, CheckpointInvalid, sign, verify
from gateway.audit.merkle import leaf_hash

KEY = ec.generate_private_key(ec.SECP256R1())
CHECKPOINT = Checkpoint(size=1024, root=leaf_hash(b"root"), time=datetime(2026, 6, 1, 8, 0, tzinfo=UTC))


def test_round_trip() -> None:
    note = sign(CHECKPOINT, "gateway", KEY)
    assert note.splitlines()[:4] == [
        "graduate-exchange-gateway/audit/v1",
        "1024",
        CHECKPOINT.body().splitlines()[2],
        "time 2026-06-01T08:00:00Z",
    ]
    assert verify(note, "gateway", KEY.public_key()) == CHECKPOINT


@pytest.mark.parametrize(
    "change",
    [
        lambda n: n.replace("\n1024\n", "\n1025\n"),
        lambda n: n.replace("time 2026", "time 2027"),
        lambda n: n.replace("graduate-exchange-gateway", "other-log"),
        lambda n: n.replace("— gateway", "— someone"),
        lambda n: n[:-10] + ("A" if n[-10] != "A" else "B") + n[-9:],
        lambda n: n[:-3] + "\n",  # the signature line's base64 cut short
    ],
    ids=["size", "time", "origin", "signer", "signature", "signature-not-base64"],
)
def test_any_change_is_refused(change) -> None:  # type: ignore[no-untyped-def]
    note = sign(CHECKPOINT, "gateway", KEY)
    with pytest.raises(CheckpointInvalid):
        verify(change(note), "gateway", KEY.public_key())


def test_another_key_does_not_verify() -> None:
    note = sign(CHECKPOINT, "gateway", KEY)
    with pytest.raises(CheckpointInvalid):
        verify(note, "gateway", ec.generate_private_key(ec.SECP256R1()).public_key())
