"""domain: directory entries, archive rights, registrations in received order, one open transfer

- ``participants``: ``opening_hours`` (published in the directory); for employers
  ``archive_rights`` (有档案管理权限) and ``archive_agency_id`` (the talent service agency that keeps
  its personnel files). Employers already registered whose unit nature sends archives to the
  employer keep receiving them: they are recorded with archive rights, which the operator corrects
  with ``gateway participants update ID --archive-rights no --archive-agency AGENCY``.
- ``registrations``: the contract reference and date (settlement evidence), the release of a
  targeted-training agreement, and ``filed_received_at``, when the gateway received the filing
  (which filed registration counts); registrations filed before this revision take the time they
  were last changed, which for a filed one is when its filing arrived.
- ``archive_transfers``: a manifest id once per holder, a request id once between a holder and a
  receiver, and at most one open (requested or dispatched) transfer per graduate. A database that
  already holds two open transfers for one graduate must have one of them closed first.

Revision ID: 0011_domain
Revises: 0011_web (numbered 0011 as assigned, down_revision 0010; it follows 0011_websec and 0011_web, which
reached main first, so that a database already at 0011_web upgrades)
Create Date: 2026-12-06 02:54:28.611781
"""

from alembic import op
import sqlalchemy as sa


revision = '0011_domain'
down_revision = '0011_web'
branch_labels = None
depends_on = None

OPEN = sa.text("status IN ('requested', 'dispatched')")
# The unit natures whose archives go to the employer (schemas/codes/unit-nature-codes.csv as of this
# revision: state organs, public institutions, state-owned enterprises, armed forces).
KEEPS_ARCHIVES = ("10", "20", "21", "22", "23", "29", "31", "40")


def upgrade() -> None:
    with op.batch_alter_table('archive_transfers', schema=None) as batch_op:
        batch_op.create_unique_constraint('uq_archive_transfers_holder_manifest', ['holder_id', 'manifest_id'])
        batch_op.create_unique_constraint('uq_archive_transfers_holder_receiver_request', ['holder_id', 'receiver_id', 'request_id'])
        batch_op.create_index('uq_archive_transfers_open_per_graduate', ['identity_hash'], unique=True, sqlite_where=OPEN, postgresql_where=OPEN)

    with op.batch_alter_table('participants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('opening_hours', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('archive_rights', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('archive_agency_id', sa.String(length=18), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_participants_archive_agency_id_participants'), 'participants', ['archive_agency_id'], ['id'])

    with op.batch_alter_table('registrations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('contract_reference', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('contract_date', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('targeted_release_reference', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('filed_received_at', sa.DateTime(timezone=True), nullable=True))

    participants = sa.table('participants', sa.column('kind', sa.String), sa.column('unit_nature', sa.String), sa.column('archive_rights', sa.Boolean))
    op.execute(
        participants.update()
        .where(participants.c.kind == 'employer', participants.c.unit_nature.in_(KEEPS_ARCHIVES))
        .values(archive_rights=True)
    )
    registrations = sa.table('registrations', sa.column('status', sa.String), sa.column('updated_at', sa.DateTime(timezone=True)), sa.column('filed_received_at', sa.DateTime(timezone=True)))
    op.execute(
        registrations.update()
        .where(registrations.c.status == 'filed')
        .values(filed_received_at=registrations.c.updated_at)
    )


def downgrade() -> None:
    with op.batch_alter_table('registrations', schema=None) as batch_op:
        batch_op.drop_column('filed_received_at')
        batch_op.drop_column('targeted_release_reference')
        batch_op.drop_column('contract_date')
        batch_op.drop_column('contract_reference')

    with op.batch_alter_table('participants', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_participants_archive_agency_id_participants'), type_='foreignkey')
        batch_op.drop_column('archive_agency_id')
        batch_op.drop_column('archive_rights')
        batch_op.drop_column('opening_hours')

    with op.batch_alter_table('archive_transfers', schema=None) as batch_op:
        batch_op.drop_index('uq_archive_transfers_open_per_graduate', sqlite_where=OPEN, postgresql_where=OPEN)
        batch_op.drop_constraint('uq_archive_transfers_holder_receiver_request', type_='unique')
        batch_op.drop_constraint('uq_archive_transfers_holder_manifest', type_='unique')
