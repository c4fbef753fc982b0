"""participants and messages

Revision ID: 0001
Revises: 
Create Date: 2026-11-30 05:11:59.799732
"""

from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    
    op.create_table('participants',
    sa.Column('id', sa.String(length=18), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('unit_nature', sa.String(length=2), nullable=True),
    sa.Column('region', sa.String(length=6), nullable=False),
    sa.Column('contact_name', sa.String(length=100), nullable=True),
    sa.Column('contact_phone', sa.String(length=40), nullable=True),
    sa.Column('contact_email', sa.String(length=200), nullable=True),
    sa.Column('contact_address', sa.String(length=300), nullable=True),
    sa.Column('delivery_mode', sa.String(length=8), nullable=False),
    sa.Column('endpoint_url', sa.String(length=500), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_participants'))
    )
    with op.batch_alter_table('participants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_participants_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_participants_region'), ['region'], unique=False)

    op.create_table('messages',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('message_id', sa.String(length=36), nullable=False),
    sa.Column('sender_id', sa.String(length=18), nullable=False),
    sa.Column('recipient_id', sa.String(length=18), nullable=False),
    sa.Column('service', sa.String(length=64), nullable=False),
    sa.Column('service_version', sa.String(length=16), nullable=False),
    sa.Column('correlation_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('body_sha256', sa.String(length=64), nullable=False),
    sa.Column('envelope', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['recipient_id'], ['participants.id'], name=op.f('fk_messages_recipient_id_participants')),
    sa.ForeignKeyConstraint(['sender_id'], ['participants.id'], name=op.f('fk_messages_sender_id_participants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_messages')),
    sa.UniqueConstraint('sender_id', 'message_id', name='uq_messages_sender_message_id')
    )
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_messages_received_at'), ['received_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_messages_recipient_id'), ['recipient_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_messages_sender_id'), ['sender_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_messages_service'), ['service'], unique=False)

    op.create_table('participant_certificates',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('participant_id', sa.String(length=18), nullable=False),
    sa.Column('fingerprint_sha256', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=500), nullable=False),
    sa.Column('serial_number', sa.String(length=64), nullable=False),
    sa.Column('pem', sa.Text(), nullable=False),
    sa.Column('not_before', sa.DateTime(timezone=True), nullable=False),
    sa.Column('not_after', sa.DateTime(timezone=True), nullable=False),
    sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], name=op.f('fk_participant_certificates_participant_id_participants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_participant_certificates')),
    sa.UniqueConstraint('fingerprint_sha256', name=op.f('uq_participant_certificates_fingerprint_sha256'))
    )
    with op.batch_alter_table('participant_certificates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_participant_certificates_participant_id'), ['participant_id'], unique=False)

    op.create_table('served_regions',
    sa.Column('participant_id', sa.String(length=18), nullable=False),
    sa.Column('region', sa.String(length=6), nullable=False),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], name=op.f('fk_served_regions_participant_id_participants')),
    sa.PrimaryKeyConstraint('participant_id', 'region', name=op.f('pk_served_regions'))
    )
    with op.batch_alter_table('served_regions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_served_regions_region'), ['region'], unique=False)

    op.create_table('deliveries',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('message_pk', sa.Integer(), nullable=False),
    sa.Column('recipient_id', sa.String(length=18), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['message_pk'], ['messages.id'], name=op.f('fk_deliveries_message_pk_messages')),
    sa.ForeignKeyConstraint(['recipient_id'], ['participants.id'], name=op.f('fk_deliveries_recipient_id_participants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deliveries'))
    )
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deliveries_message_pk'), ['message_pk'], unique=False)
        batch_op.create_index(batch_op.f('ix_deliveries_recipient_id'), ['recipient_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_deliveries_status'), ['status'], unique=False)




def downgrade() -> None:
    
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deliveries_status'))
        batch_op.drop_index(batch_op.f('ix_deliveries_recipient_id'))
        batch_op.drop_index(batch_op.f('ix_deliveries_message_pk'))

    op.drop_table('deliveries')
    with op.batch_alter_table('served_regions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_served_regions_region'))

    op.drop_table('served_regions')
    with op.batch_alter_table('participant_certificates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_participant_certificates_participant_id'))

    op.drop_table('participant_certificates')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_messages_service'))
        batch_op.drop_index(batch_op.f('ix_messages_sender_id'))
        batch_op.drop_index(batch_op.f('ix_messages_recipient_id'))
        batch_op.drop_index(batch_op.f('ix_messages_received_at'))

    op.drop_table('messages')
    with op.batch_alter_table('participants', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_participants_region'))
        batch_op.drop_index(batch_op.f('ix_participants_kind'))

    op.drop_table('participants')

