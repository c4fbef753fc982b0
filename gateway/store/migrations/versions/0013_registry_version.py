"""The registry's version: one counter that every write to the registry's tables moves.

Each process keeps a snapshot of participants, the regions they serve, their certificates and
the access overrides (``gateway.registry.snapshot``) and reloads it only when this counter has
moved. Triggers move it, in the transaction of the write, whoever writes: the ORM, a Core
statement, a script, an operator in psql. On PostgreSQL one statement-level trigger per table
(also on TRUNCATE); on SQLite, which has row-level triggers only, one per table and kind of write.

An update of a participant moves it only when it sets a column the snapshot reads
(``PARTICIPANT_COLUMNS``): a new phone number or opening hours, sent by the participant itself in a
``DirectoryEntryUpdate`` message, does not make every process reload the registry. A column added
to the snapshot's participant needs a migration that adds it here.

A SQLite batch migration that rebuilds one of these tables drops its triggers with the old
table: such a migration must create them again (tests/registry/test_version.py fails otherwise).

Revision ID: 0013_registry
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0013_registry'
down_revision = '0012'
branch_labels = None
depends_on = None

TABLES = ('participants', 'served_regions', 'participant_certificates', 'access_overrides')
BUMP = 'UPDATE registry_version SET version = version + 1 WHERE id = 1'
# The columns of participants that gateway.registry.snapshot.ParticipantEntry holds.
PARTICIPANT_COLUMNS = (
    'id', 'name', 'kind', 'region', 'unit_nature', 'delivery_mode', 'enabled', 'archive_rights', 'archive_agency_id'
)


def _update_of(table: str) -> str:
    return f"UPDATE OF {', '.join(PARTICIPANT_COLUMNS)}" if table == 'participants' else 'UPDATE'


def upgrade() -> None:
    op.create_table(
        'registry_version',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column('version', sa.BigInteger(), nullable=False),
        sa.CheckConstraint('id = 1', name='ck_registry_version_one_row'),
    )
    op.execute("INSERT INTO registry_version (id, version) VALUES (1, 1)")
    if op.get_bind().dialect.name == 'postgresql':
        # search_path pinned: the function finds its table whatever the caller's path.
        op.execute(
            "CREATE FUNCTION registry_version_bump() RETURNS trigger LANGUAGE plpgsql "
            f"SET search_path FROM CURRENT AS $$ BEGIN {BUMP}; RETURN NULL; END $$"
        )
        for table in TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_registry_version AFTER INSERT OR {_update_of(table)} OR DELETE OR TRUNCATE "
                f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION registry_version_bump()"
            )
    else:
        for table in TABLES:
            for event, when in (('insert', 'INSERT'), ('update', _update_of(table)), ('delete', 'DELETE')):
                op.execute(f"CREATE TRIGGER {table}_registry_version_{event} AFTER {when} ON {table} BEGIN {BUMP}; END")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for table in TABLES:
            op.execute(f"DROP TRIGGER {table}_registry_version ON {table}")
        op.execute("DROP FUNCTION registry_version_bump()")
    else:
        for table in TABLES:
            for event in ('insert', 'update', 'delete'):
                op.execute(f"DROP TRIGGER {table}_registry_version_{event}")
    op.drop_table('registry_version')
