"""message signatures and receipts

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 05:28:09.864138
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('certificate_sha256', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('signature_sha256', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('receipt', sa.LargeBinary(), nullable=True))




def downgrade() -> None:

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('receipt')
        batch_op.drop_column('signature_sha256')
        batch_op.drop_column('certificate_sha256')


