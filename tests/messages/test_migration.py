"""Migration 0008 on a store with messages from before it (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, MetaData, Table, select, text

from gateway.messages.keyring import PayloadKeyRing, create_key
from gateway.messages.models import Message
from gateway.messages.payloads import PayloadCipher, reencrypt
from gateway.store.db import alembic_config, connect, session_factory, transaction

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
OLD_ENVELOPE = b"<soapenv:Envelope><!-- 11010520030315041X --></soapenv:Envelope>"


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    url = f"sqlite:///{tmp_path / 'old.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    created = connect(url)
    request.addfinalizer(created.dispose)
    return created


def store_a_message_at_0005(engine: Engine) -> None:
    command.upgrade(alembic_config(engine), "0005")
    with engine.begin() as connection:
        metadata = MetaData()
        participants = Table("participants", metadata, autoload_with=connection)
        messages = Table("messages", metadata, autoload_with=connection)
        for participant in ("S", "R"):
            connection.execute(
                participants.insert().values(
                    id=participant,
                    name=participant,
                    kind="university",
                    region="110000",
                    delivery_mode="pull",
                    push_timeout_seconds=10,
                    max_delivery_attempts=8,
                    enabled=True,
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
        connection.execute(
            messages.insert().values(
                message_id="m-old",
                sender_id="S",
                recipient_id="R",
                service="GraduateVerificationRequest",
                service_version="1",
                created_at=NOW,
                received_at=NOW,
                size=len(OLD_ENVELOPE),
                body_sha256="0" * 64,
                envelope=OLD_ENVELOPE,
            )
        )


def test_old_plaintext_rows_stay_readable_and_reencrypt_seals_them(engine: Engine, tmp_path: Path) -> None:
    store_a_message_at_0005(engine)
    command.upgrade(alembic_config(engine), "0008")
    create_key(tmp_path / "ring", NOW)
    cipher = PayloadCipher(PayloadKeyRing(tmp_path / "ring"))
    sessions = session_factory(engine)
    with transaction(sessions) as session:
        old = session.scalars(select(Message)).one()
        assert (old.envelope_key_id, old.payload_purged_at) == (None, None)
        assert cipher.open_envelope(old) == OLD_ENVELOPE
    # The older code could not read a sealed envelope: a downgrade refuses once there is one.
    command.downgrade(alembic_config(engine), "0005")
    command.upgrade(alembic_config(engine), "0008")
    assert reencrypt(sessions, cipher, 100, lambda _n: None) == 1
    with engine.connect() as connection:
        column, key_id = connection.execute(text("SELECT envelope, envelope_key_id FROM messages")).one()
    assert key_id == cipher.ring.current.key_id and b"11010520030315041X" not in bytes(column)
    with transaction(sessions) as session:
        assert cipher.open_envelope(session.scalars(select(Message)).one()) == OLD_ENVELOPE
    with pytest.raises(RuntimeError, match="1 messages have encrypted or purged envelopes"):
        command.downgrade(alembic_config(engine), "0005")
