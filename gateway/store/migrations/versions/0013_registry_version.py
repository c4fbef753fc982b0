"""The registry's version: one counter that every write to the registry's tables moves.

Each process keeps a snapshot of participants, the regions they serve, their certificates and
the access overrides (``gateway.registry.snapshot``) and reloads it only when this counter has
moved. Triggers move it, in the transaction of the write, whoever writes: the ORM, a Core
statement, a script, an operator in psql. On PostgreSQL one statement-level trigger per table
(also on TRUNCATE); on SQLite, which has row-level triggers only, one per table and kind of write.

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
                f"CREATE TRIGGER {table}_registry_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
                f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION registry_version_bump()"
            )
    else:
        for table in TABLES:
            for event in ('insert', 'update', 'delete'):
                op.execute(
                    f"CREATE TRIGGER {table}_registry_version_{event} AFTER {event.upper()} ON {table} "
                    f"BEGIN {BUMP}; END"
                )


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
