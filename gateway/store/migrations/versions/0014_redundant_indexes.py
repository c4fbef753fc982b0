"""Drop the four indexes whose column leads a unique key of the same table.

``messages.sender_id``, ``registrations.university_id``, ``agreements.employer_id`` and
``archive_transfers.holder_id`` each had an index of their own beside a unique key that begins with
the same column ((sender_id, message_id), (university_id, registration_id), (employer_id,
agreement_id), (holder_id, manifest_id) and (holder_id, receiver_id, request_id)). The unique key
serves every lookup by that column alone as well, so the extra index bought nothing and cost a
write with every row. Worse, PostgreSQL chose it: on a table it has not analysed yet (a new
schema, the first minutes of a season) the planner rates both indexes alike, takes the one-column
index for ``WHERE sender_id = $1 AND message_id = $2`` and filters the sender's rows one by one,
and psycopg's prepared statements keep that plan. The intake's replay check and the registration
rules then read every row of the sender for each message: 1,500 - 1,700 rows a lookup after 6,000
messages in ``bench/intake/profile_pipeline.py --postgres`` (pg_stat_user_indexes), more with
every message (bench/intake/README.md, ninth pass). ``tests/store/test_indexes.py`` keeps it so.

Autovacuum analyses a table once some fifty rows have changed, within a minute, and PostgreSQL then
plans again with the table's statistics, which rate the participant's column as what it is. Until
then a lookup whose table has two keys leading with the same column is still a coin toss:
``archive_transfers`` has (holder_id, manifest_id) and (holder_id, receiver_id, request_id).

Revision ID: 0014_indexes
Revises: 0013_registry
"""

from __future__ import annotations

from alembic import op

revision = '0014_indexes'
down_revision = '0013_registry'
branch_labels = None
depends_on = None

# (index, table, column): each column leads a unique key of its table.
REDUNDANT = (
    ('ix_messages_sender_id', 'messages', 'sender_id'),
    ('ix_registrations_university_id', 'registrations', 'university_id'),
    ('ix_agreements_employer_id', 'agreements', 'employer_id'),
    ('ix_archive_transfers_holder_id', 'archive_transfers', 'holder_id'),
)


def upgrade() -> None:
    for index, table, _column in REDUNDANT:
        op.drop_index(index, table_name=table)


def downgrade() -> None:
    for index, table, column in REDUNDANT:
        op.create_index(index, table, [column])
