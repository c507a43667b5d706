"""field fixes: the daily-cap counter holds granted points net of reversals

Revision ID: 0008
Revises: 0001
Create Date: 2026-11-23 11:20:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0001'
branch_labels = None
depends_on = ('0003',)


def upgrade() -> None:
    # The counter kept what acts asked for (uncapped); it now keeps what was granted, net of
    # reversals. Existing rows keep their value: they can only overstate a day (at worst the day of the upgrade).
    with op.batch_alter_table('household_day_points') as batch:
        batch.alter_column('requested', new_column_name='granted')
        batch.add_column(sa.Column('last_grant', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('household_day_points') as batch:
        batch.drop_column('last_grant')
        batch.alter_column('granted', new_column_name='requested')
