"""domain: registrations, agreements, archive transfers, access overrides

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 05:59:05.163834
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('access_overrides',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('participant_id', sa.String(length=18), nullable=False),
    sa.Column('service', sa.String(length=64), nullable=False),
    sa.Column('counterpart_id', sa.String(length=18), nullable=True),
    sa.Column('effect', sa.String(length=8), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['counterpart_id'], ['participants.id'], name=op.f('fk_access_overrides_counterpart_id_participants')),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], name=op.f('fk_access_overrides_participant_id_participants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_access_overrides'))
    )
    with op.batch_alter_table('access_overrides', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_access_overrides_participant_id'), ['participant_id'], unique=False)

    op.create_table('agreements',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('agreement_id', sa.String(length=64), nullable=False),
    sa.Column('employer_id', sa.String(length=18), nullable=False),
    sa.Column('university_id', sa.String(length=18), nullable=False),
    sa.Column('identity_hash', sa.String(length=64), nullable=False),
    sa.Column('graduate_name', sa.String(length=100), nullable=False),
    sa.Column('position', sa.String(length=100), nullable=False),
    sa.Column('work_region', sa.String(length=6), nullable=False),
    sa.Column('valid_from', sa.Date(), nullable=False),
    sa.Column('valid_until', sa.Date(), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('cancellation_requested_by', sa.String(length=16), nullable=True),
    sa.Column('offered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['employer_id'], ['participants.id'], name=op.f('fk_agreements_employer_id_participants')),
    sa.ForeignKeyConstraint(['university_id'], ['participants.id'], name=op.f('fk_agreements_university_id_participants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agreements')),
    sa.UniqueConstraint('employer_id', 'agreement_id', name='uq_agreements_employer_agreement')
    )
    with op.batch_alter_table('agreements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agreements_agreement_id'), ['agreement_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_agreements_employer_id'), ['employer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_agreements_identity_hash'), ['identity_hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_agreements_state'), ['state'], unique=False)
        batch_op.create_index(batch_op.f('ix_agreements_university_id'), ['university_id'], unique=False)

    op.create_table('archive_transfers',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('identity_hash', sa.String(length=64), nullable=False),
    sa.Column('transfer_number', sa.String(length=32), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.Column('manifest_id', sa.String(length=64), nullable=True),
    sa.Column('holder_id', sa.String(length=18), nullable=False),
    sa.Column('receiver_id', sa.String(length=18), nullable=False),
    sa.Column('leaves_late', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('dispatch_due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('dispatched_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('dispatch_method', sa.String(length=32), nullable=True),
    sa.Column('waybill_number', sa.String(length=40), nullable=True),
    sa.Column('documents', sa.Integer(), nullable=False),
    sa.Column('receipt_due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('documents_missing', sa.Integer(), nullable=False),
    sa.Column('documents_damaged', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['holder_id'], ['participants.id'], name=op.f('fk_archive_transfers_holder_id_participants')),
    sa.ForeignKeyConstraint(['receiver_id'], ['participants.id'], name=op.f('fk_archive_transfers_receiver_id_participants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_archive_transfers'))
    )
    with op.batch_alter_table('archive_transfers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_archive_transfers_dispatch_due_at'), ['dispatch_due_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_archive_transfers_holder_id'), ['holder_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_archive_transfers_identity_hash'), ['identity_hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_archive_transfers_manifest_id'), ['manifest_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_archive_transfers_receipt_due_at'), ['receipt_due_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_archive_transfers_receiver_id'), ['receiver_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_archive_transfers_request_id'), ['request_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_archive_transfers_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_archive_transfers_transfer_number'), ['transfer_number'], unique=False)

    op.create_table('registrations',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('registration_id', sa.String(length=64), nullable=False),
    sa.Column('university_id', sa.String(length=18), nullable=False),
    sa.Column('education_department_id', sa.String(length=18), nullable=False),
    sa.Column('identity_hash', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('education_level', sa.String(length=16), nullable=False),
    sa.Column('major', sa.String(length=100), nullable=False),
    sa.Column('major_code', sa.String(length=8), nullable=False),
    sa.Column('graduation_date', sa.Date(), nullable=False),
    sa.Column('leaves_late', sa.Boolean(), nullable=False),
    sa.Column('destination_code', sa.String(length=3), nullable=False),
    sa.Column('employer_id', sa.String(length=18), nullable=True),
    sa.Column('employer_name', sa.String(length=200), nullable=True),
    sa.Column('employer_unit_nature', sa.String(length=2), nullable=True),
    sa.Column('employer_region', sa.String(length=6), nullable=True),
    sa.Column('targeted_unit_id', sa.String(length=18), nullable=True),
    sa.Column('admitting_institution_id', sa.String(length=18), nullable=True),
    sa.Column('household_region', sa.String(length=6), nullable=False),
    sa.Column('archive_receiver_choice', sa.String(length=32), nullable=False),
    sa.Column('archive_receiver_id', sa.String(length=18), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('transfer_number', sa.String(length=32), nullable=True),
    sa.Column('verification_number', sa.String(length=32), nullable=True),
    sa.Column('registered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('filed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['education_department_id'], ['participants.id'], name=op.f('fk_registrations_education_department_id_participants')),
    sa.ForeignKeyConstraint(['university_id'], ['participants.id'], name=op.f('fk_registrations_university_id_participants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_registrations')),
    sa.UniqueConstraint('university_id', 'registration_id', name='uq_registrations_university_reg')
    )
    with op.batch_alter_table('registrations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_registrations_identity_hash'), ['identity_hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_registrations_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_registrations_transfer_number'), ['transfer_number'], unique=False)
        batch_op.create_index(batch_op.f('ix_registrations_university_id'), ['university_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_registrations_verification_number'), ['verification_number'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('registrations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_registrations_verification_number'))
        batch_op.drop_index(batch_op.f('ix_registrations_university_id'))
        batch_op.drop_index(batch_op.f('ix_registrations_transfer_number'))
        batch_op.drop_index(batch_op.f('ix_registrations_status'))
        batch_op.drop_index(batch_op.f('ix_registrations_identity_hash'))

    op.drop_table('registrations')
    with op.batch_alter_table('archive_transfers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_archive_transfers_transfer_number'))
        batch_op.drop_index(batch_op.f('ix_archive_transfers_status'))
        batch_op.drop_index(batch_op.f('ix_archive_transfers_request_id'))
        batch_op.drop_index(batch_op.f('ix_archive_transfers_receiver_id'))
        batch_op.drop_index(batch_op.f('ix_archive_transfers_receipt_due_at'))
        batch_op.drop_index(batch_op.f('ix_archive_transfers_manifest_id'))
        batch_op.drop_index(batch_op.f('ix_archive_transfers_identity_hash'))
        batch_op.drop_index(batch_op.f('ix_archive_transfers_holder_id'))
        batch_op.drop_index(batch_op.f('ix_archive_transfers_dispatch_due_at'))

    op.drop_table('archive_transfers')
    with op.batch_alter_table('agreements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_agreements_university_id'))
        batch_op.drop_index(batch_op.f('ix_agreements_state'))
        batch_op.drop_index(batch_op.f('ix_agreements_identity_hash'))
        batch_op.drop_index(batch_op.f('ix_agreements_employer_id'))
        batch_op.drop_index(batch_op.f('ix_agreements_agreement_id'))

    op.drop_table('agreements')
    with op.batch_alter_table('access_overrides', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_access_overrides_participant_id'))

    op.drop_table('access_overrides')

