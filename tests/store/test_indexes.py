"""The schema's indexes: what the migrations build is what the models say, no index repeats the
leading columns of another, and on PostgreSQL a lookup by a participant's own key (a message id,
a registration id) does not read all the participant's rows, even in a plan made before the table
was analysed (migration 0014)."""

from __future__ import annotations

import re

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

import gateway.store.models  # noqa: F401  # every table in Base.metadata
from gateway.store.base import Base
from gateway.store.db import connect, migrate


def test_the_migrations_build_what_the_models_declare(migrated: Engine) -> None:
    with migrated.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def _column_lists(engine: Engine, table: str) -> dict[str, tuple[str, ...]]:
    """Every index and unique key of ``table`` (but partial ones) by name: its columns in order."""
    found = inspect(engine)
    lists = {
        index["name"]: tuple(str(column) for column in index["column_names"])
        for index in found.get_indexes(table)
        if (index.get("dialect_options") or {}).get(f"{engine.dialect.name}_where") is None
    }
    for unique in found.get_unique_constraints(table):
        lists[unique["name"]] = tuple(unique["column_names"])
    return {name: columns for name, columns in lists.items() if name is not None}


def test_no_index_repeats_the_leading_columns_of_another(migrated: Engine) -> None:
    """An index on the first columns of another index is never needed, and PostgreSQL may prefer
    it to the longer one (the next test)."""
    repeated = []
    for table in inspect(migrated).get_table_names():
        lists = _column_lists(migrated, table)
        for name, columns in lists.items():
            for other, longer in lists.items():
                if other != name and len(longer) > len(columns) and longer[: len(columns)] == columns:
                    repeated.append(f"{table}.{name} {columns} leads {other} {longer}")
    assert repeated == []


# The lookups by a participant's own key that the domain stages make for each message: the
# participant's column first, then the key it gives the document.
OWN_KEYS = [
    ("messages", "sender_id", "message_id"),  # the replay check
    ("registrations", "university_id", "registration_id"),
    ("agreements", "employer_id", "agreement_id"),
]
# Not archive_transfers (holder_id, manifest_id): two unique keys lead with holder_id there, and
# before the table's first analysis PostgreSQL may take the other (migration 0014's docstring).


@pytest.mark.parametrize(("table", "participant", "key"), OWN_KEYS)
def test_a_lookup_by_a_participants_own_key_does_not_read_all_its_rows(
    postgres_url: str, table: str, participant: str, key: str
) -> None:
    """The plan that psycopg's prepared statements keep is a generic one, made for any values; on
    a new, unanalysed schema PostgreSQL took a one-column index on the participant for the replay
    check's ``sender_id = $1 AND message_id = $2`` and read the sender's rows one by one (1,500 a
    message after 6,000 messages). The document's key must be in the index condition."""
    engine = connect(postgres_url)
    migrate(engine)
    try:
        with engine.connect() as connection:
            connection.execute(text("SET plan_cache_mode = force_generic_plan"))
            lookup = f"PREPARE lookup AS SELECT 1 FROM {table} WHERE {participant} = $1 AND {key} = $2"  # noqa: S608  # the test's own names
            connection.execute(text(lookup))
            plan = [str(row[0]).strip() for row in connection.execute(text("EXPLAIN EXECUTE lookup(NULL, NULL)"))]
    finally:
        engine.dispose()
    conditions = [line for line in plan if line.startswith("Index Cond:")]
    assert conditions, plan
    assert all(re.search(rf"\b{key}\b", line) for line in conditions), plan


def test_the_batchs_replay_look_up_reads_the_unique_key_even_in_a_generic_plan(postgres_url: str) -> None:
    """The group commit looks up all its messages at once (gateway.intake.earlier); the plan of the
    statement as psycopg prepares it, generic and made before the table was analysed, must search
    the unique key for both columns, not scan the table (as ``(sender_id, message_id) IN (pairs)``
    and a join of the unnested arrays did)."""
    from gateway.intake.earlier import _BY_PAIRS

    engine = connect(postgres_url)
    migrate(engine)
    try:
        with engine.connect() as connection:
            connection.execute(text("SET plan_cache_mode = force_generic_plan"))
            for _ in range(8):  # psycopg prepares a statement on the server at its fifth run
                connection.execute(_BY_PAIRS, {"senders": ["A", "B"], "ids": ["x", "y"]}).all()
            name = connection.execute(
                text("SELECT name FROM pg_prepared_statements WHERE statement LIKE '%FROM messages%'")
            ).scalar_one()
            explain = f'EXPLAIN EXECUTE "{name}"(NULL, NULL)'
            plan = [str(row[0]).strip() for row in connection.execute(text(explain))]
    finally:
        engine.dispose()
    assert not any("Seq Scan" in line for line in plan), plan
    conditions = [line for line in plan if line.startswith("Index Cond:") and "message_id" in line]
    assert conditions and all("sender_id" in line for line in conditions), plan
