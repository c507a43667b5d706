"""point totals roll-up: household_month_points and point_rollup_state

Sums of every household posting per local month, filled by `jianfei reports rollup` (reports.rollup)
up to a watermark entry id; the point totals export reads those rows for the entries up to the
watermark and the journal only after it (a month of a 60,000-household street: ~50,000 rows instead of
~880,000 entries and their postings). PostgreSQL only in use; the tables exist on SQLite too.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23 17:30:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

FIGURES = ('net', 'checkin', 'compost', 'recycling', 'volunteer', 'challenge', 'voucher', 'adjustment',
           'redemption', 'expiry', 'g_kitchen', 'g_recyclable', 'g_hazardous', 'g_other')


def upgrade() -> None:
    op.create_table(
        'point_rollup_state',
        sa.Column('timezone', sa.String(length=40), nullable=False),
        sa.Column('watermark', sa.BigInteger(), server_default='0', nullable=False),
        sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('timezone'),
    )
    op.create_table(
        'household_month_points',
        sa.Column('timezone', sa.String(length=40), nullable=False),
        sa.Column('month', sa.Date(), nullable=False),
        sa.Column('community_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('household_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        *(sa.Column(name, sa.BigInteger(), server_default='0', nullable=False) for name in FIGURES),
        sa.ForeignKeyConstraint(['community_id'], ['community.id']),
        sa.ForeignKeyConstraint(['household_id'], ['household.id']),
        sa.PrimaryKeyConstraint('timezone', 'month', 'community_id', 'household_id'),
    )


def downgrade() -> None:
    op.drop_table('household_month_points')
    op.drop_table('point_rollup_state')
