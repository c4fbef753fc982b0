"""payloads at rest: the envelope's key id, the purge time, and an envelope that a purge may erase

Rows stored before this revision keep their plaintext envelope with envelope_key_id NULL: they stay
readable, and `gateway payloads reencrypt` seals them under the current payload key.

Revision ID: 0008
Revises: 0006
Create Date: 2026-11-30 08:05:00.300397
"""

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('envelope_key_id', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('payload_purged_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.alter_column('envelope', existing_type=sa.LargeBinary(), nullable=True)


def downgrade() -> None:

    # The older code reads the envelope column as plaintext: refuse rather than hand it ciphertext.
    sealed = op.get_bind().execute(
        sa.text("SELECT COUNT(*) FROM messages WHERE envelope_key_id IS NOT NULL OR payload_purged_at IS NOT NULL")
    ).scalar()
    if sealed:
        raise RuntimeError(
            f"{sealed} messages have encrypted or purged envelopes, which the code before revision 0008 cannot read"
        )
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.alter_column('envelope', existing_type=sa.LargeBinary(), nullable=False)
        batch_op.drop_column('payload_purged_at')
        batch_op.drop_column('envelope_key_id')
