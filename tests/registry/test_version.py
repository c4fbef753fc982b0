"""The registry's version moves with every write to what the registry snapshot reads, whoever writes.

Triggers move it (migration 0013). The tables and columns are those the snapshot reads
(``REGISTRY_COLUMNS``, taken from the snapshot's own queries): each table is inserted into,
updated and deleted from here with plain SQL, as a script or an operator in psql would, each
column is set, and each of the gateway's own writers is run, on SQLite and on PostgreSQL. A table
or column added to the snapshot without a trigger, or a migration that drops one (a SQLite batch
migration rebuilding the table), fails here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from gateway.access.models import AccessOverride
from gateway.access.rules import load_rules
from gateway.access.services import add_override, remove_override
from gateway.cli import main
from gateway.pki.participants import issue_certificate
from gateway.registry.models import RegistryVersion
from gateway.registry.services import ParticipantInput, add_participant, get_participant, set_enabled
from gateway.registry.snapshot import REGISTRY_COLUMNS, REGISTRY_TABLES
from gateway.registry.updates import ChangedBy, update_participant
from gateway.settings import Settings
from gateway.store.base import Base
from gateway.store.db import connect, migrate, session_factory, transaction
from tests.conftest import AGENCY_CHAOYANG, UNIVERSITY

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
OWNER = "12110108400000008J"

# One row of each registry table, and a change to it.
ROWS: dict[str, dict[str, Any]] = {
    "participants": {
        "id": OWNER,
        "name": "A university",
        "kind": "university",
        "region": "110108",
        "delivery_mode": "pull",
        "push_timeout_seconds": 10,
        "max_delivery_attempts": 8,
        "enabled": True,
        "archive_rights": False,
        "created_at": NOW,
        "updated_at": NOW,
    },
    "served_regions": {"participant_id": OWNER, "region": "110105"},
    "participant_certificates": {
        "id": 1,
        "participant_id": OWNER,
        "fingerprint_sha256": "ab" * 32,
        "subject": "CN=a",
        "serial_number": "1",
        "pem": "-",
        "not_before": NOW,
        "not_after": NOW,
        "added_at": NOW,
    },
    "access_overrides": {
        "id": 1,
        "participant_id": OWNER,
        "service": "*",
        "effect": "deny",
        "reason": "a test",
        "created_at": NOW,
    },
}
CHANGES: dict[str, dict[str, Any]] = {
    "participants": {"enabled": False},
    "served_regions": {"region": "110101"},
    "participant_certificates": {"subject": "CN=b"},
    "access_overrides": {"effect": "grant"},
}


def version_of(engine: Engine) -> int:
    with engine.connect() as connection:
        found: int = connection.execute(select(RegistryVersion.version)).scalar_one()
        return found


def test_every_table_the_snapshot_reads_is_written_here() -> None:
    assert set(ROWS) == set(CHANGES) == REGISTRY_TABLES


@pytest.mark.parametrize("name", sorted(REGISTRY_TABLES))
def test_plain_sql_inserts_updates_and_deletes_move_the_version(migrated: Engine, name: str) -> None:
    table = Base.metadata.tables[name]
    if name != "participants":
        with migrated.begin() as connection:
            connection.execute(Base.metadata.tables["participants"].insert().values(ROWS["participants"]))
    for statement in (table.insert().values(ROWS[name]), table.update().values(CHANGES[name]), table.delete()):
        before = version_of(migrated)
        with migrated.begin() as connection:
            connection.execute(statement)
        assert version_of(migrated) == before + 1, f"{statement} did not move the version"


@pytest.mark.parametrize(("name", "column"), sorted((t, c) for t, columns in REGISTRY_COLUMNS.items() for c in columns))
def test_setting_any_column_the_snapshot_reads_moves_the_version(migrated: Engine, name: str, column: str) -> None:
    with migrated.begin() as connection:
        connection.execute(Base.metadata.tables["participants"].insert().values(ROWS["participants"]))
        if name != "participants":
            connection.execute(Base.metadata.tables[name].insert().values(ROWS[name]))
    before = version_of(migrated)
    table = Base.metadata.tables[name]
    with migrated.begin() as connection:
        connection.execute(table.update().values({column: table.c[column]}))  # the same value: the write counts
    assert version_of(migrated) == before + 1


def test_a_participant_s_contact_details_are_not_the_snapshot_s(migrated: Engine) -> None:
    with migrated.begin() as connection:
        connection.execute(Base.metadata.tables["participants"].insert().values(ROWS["participants"]))
    before = version_of(migrated)
    with migrated.begin() as connection:
        connection.execute(
            Base.metadata.tables["participants"].update().values(contact_phone="010 1234 5678", updated_at=NOW)
        )
    assert version_of(migrated) == before


def test_a_write_rolled_back_leaves_the_version(migrated: Engine) -> None:
    before = version_of(migrated)
    with migrated.connect() as connection, connection.begin() as transaction_:
        connection.execute(Base.metadata.tables["participants"].insert().values(ROWS["participants"]))
        assert connection.execute(select(RegistryVersion.version)).scalar_one() == before + 1  # in the same transaction
        transaction_.rollback()
    assert version_of(migrated) == before


def test_truncate_moves_the_version_on_postgresql(postgres_url: str) -> None:
    engine = connect(postgres_url)
    migrate(engine)
    before = version_of(engine)
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE access_overrides"))
    assert version_of(engine) == before + 1
    engine.dispose()


def test_the_version_row_is_one(migrated: Engine) -> None:
    with migrated.connect() as connection:
        assert connection.execute(select(RegistryVersion.id, RegistryVersion.version)).all() == [(1, 1)]


# --- the gateway's own writers, on a store with the demo participants -------------------------------


def _add(session: Session, settings: Settings) -> None:
    add_participant(
        session, ParticipantInput(id="91110108MA01ABCD1E", name="New", kind="university", region="110108"), NOW
    )


def _disable(session: Session, settings: Settings) -> None:
    set_enabled(session, UNIVERSITY, False, NOW)


def _contact(session: Session, settings: Settings) -> None:
    update_participant(session, get_participant(session, UNIVERSITY), {"contact_phone": "010 1234 5678"}, BY, NOW)


def _regions(session: Session, settings: Settings) -> None:
    update_participant(session, get_participant(session, AGENCY_CHAOYANG), {"regions_served": ["110101"]}, BY, NOW)


def _certificate(session: Session, settings: Settings) -> None:
    issue_certificate(session, settings, UNIVERSITY, datetime.now(UTC))


def _override(session: Session, settings: Settings) -> None:
    add_override(session, load_rules(), {"DestinationRegistration"}, UNIVERSITY, "*", "deny", "a test", NOW)


BY = ChangedBy("operator tester", "command line")
WRITERS: dict[str, Callable[[Session, Settings], None]] = {
    "add_participant": _add,
    "set_enabled": _disable,
    "update_participant (regions served)": _regions,
    "issue_certificate": _certificate,
    "add_override": _override,
}


@pytest.mark.parametrize("writer", list(WRITERS))
def test_each_writer_moves_the_version(store_settings: Settings, writer: str) -> None:
    engine = connect(store_settings.database_url)
    before = version_of(engine)
    with transaction(session_factory(engine)) as session:
        WRITERS[writer](session, store_settings)
    assert version_of(engine) > before
    engine.dispose()


def test_a_contact_change_moves_nothing(store_settings: Settings) -> None:
    """A participant's own DirectoryEntryUpdate changes only contact details: no process reloads."""
    engine = connect(store_settings.database_url)
    before = version_of(engine)
    with transaction(session_factory(engine)) as session:
        _contact(session, store_settings)
    assert version_of(engine) == before
    engine.dispose()


def test_removing_an_override_moves_the_version(store_settings: Settings) -> None:
    engine = connect(store_settings.database_url)
    sessions = session_factory(engine)
    with transaction(sessions) as session:
        _override(session, store_settings)
    before = version_of(engine)
    with transaction(sessions) as session:
        remove_override(session, session.scalars(select(AccessOverride.id)).one(), NOW)
    assert version_of(engine) > before
    engine.dispose()


def test_the_command_line_moves_the_version(store_settings: Settings) -> None:
    engine = connect(store_settings.database_url)
    before = version_of(engine)
    result = CliRunner().invoke(main, ["participants", "disable", UNIVERSITY], env=cli_env(store_settings))
    assert result.exit_code == 0, result.output
    assert version_of(engine) > before
    engine.dispose()


def test_gateway_init_moved_the_version(settings: Settings) -> None:
    engine = connect(settings.database_url)  # the template home: `gateway init --demo` registered participants
    assert version_of(engine) > 1
    engine.dispose()


def cli_env(settings: Settings) -> dict[str, str]:
    return {
        "GATEWAY_DATA_DIR": str(settings.data_dir),
        "GATEWAY_KEYS_DIR": str(settings.keys_dir),
        "GATEWAY_DATABASE_URL": settings.database_url,
    }
