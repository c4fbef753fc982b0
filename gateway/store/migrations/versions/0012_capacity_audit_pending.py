"""Audit entries waiting for their leaf index (the intake's, on PostgreSQL).

An intake transaction no longer takes the audit log's counter row: it writes its entries here and
commits; one sequencer at a time gives the waiting entries their indexes in a batch
(``gateway.audit.log.sequence_pending``). ``leaf_index`` is set when the entry was moved into
``audit_entries``; such rows are kept for a while so that waiters can read their position.

Revision ID: 0012
Revises: 0011_domain
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011_domain'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'audit_pending',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), primary_key=True, autoincrement=True),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('message_id', sa.String(length=36), nullable=True),
        sa.Column('entry', sa.LargeBinary(), nullable=False),
        sa.Column('leaf_hash', sa.LargeBinary(), nullable=False),
        sa.Column('leaf_index', sa.Integer(), nullable=True),
        sa.Column('sequenced_at', sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index('ix_audit_pending_waiting', 'audit_pending', ['leaf_index', 'id'])


def downgrade() -> None:
    op.drop_index('ix_audit_pending_waiting', table_name='audit_pending')
    op.drop_table('audit_pending')
