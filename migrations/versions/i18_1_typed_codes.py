"""checkin, compost_drop and weigh_in .typed: the household's hand-entry code (手工输入码) was typed, not scanned

Revision ID: i18_1
Revises: 0016
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op

revision = 'i18_1'
down_revision = 'm16people1'
branch_labels = None
depends_on = None

TABLES = ('checkin', 'compost_drop', 'weigh_in')


def upgrade() -> None:
    for table in TABLES:  # a constant default: no table rewrite on PostgreSQL 11+
        op.add_column(table, sa.Column('typed', sa.Boolean(), server_default=sa.text('false'), nullable=False))


def downgrade() -> None:
    for table in TABLES:
        op.drop_column(table, 'typed')
