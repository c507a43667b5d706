"""field fixes: the daily-cap counter holds granted points net of reversals; roster uploads are idempotent

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 11:20:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The counter kept what acts asked for (uncapped); it now keeps what was granted, net of
    # reversals. Existing rows keep their value: they can only overstate a day (at worst the day of the upgrade).
    with op.batch_alter_table('household_day_points') as batch:
        batch.alter_column('requested', new_column_name='granted')
        batch.add_column(sa.Column('last_grant', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('roster_import') as batch:
        batch.add_column(sa.Column('idempotency_key', sa.String(length=160), nullable=True))
        batch.create_unique_constraint('ux_roster_import_community_key', ['community_id', 'idempotency_key'])


def downgrade() -> None:
    with op.batch_alter_table('roster_import') as batch:
        batch.drop_constraint('ux_roster_import_community_key', type_='unique')
        batch.drop_column('idempotency_key')
    with op.batch_alter_table('household_day_points') as batch:
        batch.drop_column('last_grant')
        batch.alter_column('granted', new_column_name='requested')
