"""delivery lifecycle

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 06:13:18.034447
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:

    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mode', sa.String(length=4), nullable=False, server_default='pull'))
        batch_op.add_column(sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('enqueued_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('last_error', sa.String(length=500), nullable=True))
        batch_op.create_index(batch_op.f('ix_deliveries_next_attempt_at'), ['next_attempt_at'], unique=False)

    with op.batch_alter_table('participants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('push_timeout_seconds', sa.Integer(), nullable=False, server_default='10'))
        batch_op.add_column(sa.Column('max_delivery_attempts', sa.Integer(), nullable=False, server_default='8'))




def downgrade() -> None:

    with op.batch_alter_table('participants', schema=None) as batch_op:
        batch_op.drop_column('max_delivery_attempts')
        batch_op.drop_column('push_timeout_seconds')

    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deliveries_next_attempt_at'))
        batch_op.drop_column('last_error')
        batch_op.drop_column('delivered_at')
        batch_op.drop_column('claimed_at')
        batch_op.drop_column('enqueued_at')
        batch_op.drop_column('next_attempt_at')
        batch_op.drop_column('mode')


