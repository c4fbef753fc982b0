"""graduate accounts, grants and grant uses, message subjects

Revision ID: 0007
Revises: 0008 (numbered 0007 as assigned; it follows 0008, which reached main first, so that a database already at 0008 upgrades)
Create Date: 2026-11-30 08:07:03.442350
"""

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('graduate_accounts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('identity_hash', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=False),
    sa.Column('registration_pk', sa.Integer(), nullable=False),
    sa.Column('activated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_sign_in_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['registration_pk'], ['registrations.id'], name=op.f('fk_graduate_accounts_registration_pk_registrations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_graduate_accounts')),
    sa.UniqueConstraint('identity_hash', name=op.f('uq_graduate_accounts_identity_hash'))
    )
    with op.batch_alter_table('graduate_accounts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_graduate_accounts_registration_pk'), ['registration_pk'], unique=False)

    op.create_table('message_subjects',
    sa.Column('message_pk', sa.Integer(), nullable=False),
    sa.Column('identity_hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['message_pk'], ['messages.id'], name=op.f('fk_message_subjects_message_pk_messages')),
    sa.PrimaryKeyConstraint('message_pk', name=op.f('pk_message_subjects'))
    )
    with op.batch_alter_table('message_subjects', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_message_subjects_identity_hash'), ['identity_hash'], unique=False)

    op.create_table('grants',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('verifier_id', sa.String(length=18), nullable=False),
    sa.Column('facts', sa.String(length=100), nullable=False),
    sa.Column('purpose', sa.String(length=32), nullable=False),
    sa.Column('purpose_text', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('max_uses', sa.Integer(), nullable=False),
    sa.Column('uses', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('short_code', sa.String(length=16), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['graduate_accounts.id'], name=op.f('fk_grants_account_id_graduate_accounts')),
    sa.ForeignKeyConstraint(['verifier_id'], ['participants.id'], name=op.f('fk_grants_verifier_id_participants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_grants')),
    sa.UniqueConstraint('short_code', name=op.f('uq_grants_short_code'))
    )
    with op.batch_alter_table('grants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_grants_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_grants_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_grants_verifier_id'), ['verifier_id'], unique=False)

    op.create_table('grant_uses',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('grant_id', sa.String(length=36), nullable=True),
    sa.Column('account_id', sa.Integer(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('verifier_id', sa.String(length=18), nullable=False),
    sa.Column('facts', sa.String(length=100), nullable=False),
    sa.Column('purpose', sa.String(length=32), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.Column('outcome', sa.String(length=8), nullable=False),
    sa.Column('fault_code', sa.String(length=40), nullable=True),
    sa.Column('message_id', sa.String(length=36), nullable=True),
    sa.Column('message_pk', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['graduate_accounts.id'], name=op.f('fk_grant_uses_account_id_graduate_accounts')),
    sa.ForeignKeyConstraint(['grant_id'], ['grants.id'], name=op.f('fk_grant_uses_grant_id_grants')),
    sa.ForeignKeyConstraint(['message_pk'], ['messages.id'], name=op.f('fk_grant_uses_message_pk_messages')),
    sa.ForeignKeyConstraint(['verifier_id'], ['participants.id'], name=op.f('fk_grant_uses_verifier_id_participants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_grant_uses'))
    )
    with op.batch_alter_table('grant_uses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_grant_uses_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_grant_uses_grant_id'), ['grant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_grant_uses_message_pk'), ['message_pk'], unique=False)
        batch_op.create_index(batch_op.f('ix_grant_uses_verifier_id'), ['verifier_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('grant_uses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_grant_uses_verifier_id'))
        batch_op.drop_index(batch_op.f('ix_grant_uses_message_pk'))
        batch_op.drop_index(batch_op.f('ix_grant_uses_grant_id'))
        batch_op.drop_index(batch_op.f('ix_grant_uses_account_id'))

    op.drop_table('grant_uses')
    with op.batch_alter_table('grants', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_grants_verifier_id'))
        batch_op.drop_index(batch_op.f('ix_grants_status'))
        batch_op.drop_index(batch_op.f('ix_grants_account_id'))

    op.drop_table('grants')
    with op.batch_alter_table('message_subjects', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_message_subjects_identity_hash'))

    op.drop_table('message_subjects')
    with op.batch_alter_table('graduate_accounts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_graduate_accounts_registration_pk'))

    op.drop_table('graduate_accounts')
