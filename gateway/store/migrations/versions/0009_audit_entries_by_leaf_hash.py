"""audit entries by leaf hash (inclusion proofs asked for by leaf hash, issue 7)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 08:05:24.580173
"""

from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('audit_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_entries_leaf_hash'), ['leaf_hash'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('audit_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_entries_leaf_hash'))
