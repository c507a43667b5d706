"""one check per household per window, whatever its grade; re-grades recorded as amendments

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04

A scan graded incorrect used to be accepted again on every re-scan of the window (the unique index
held credited checks only): of each window's accepted checks the credited one, else the earliest,
stays accepted and the others become the duplicates they were.
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        UPDATE checkin AS k SET status = 'duplicate'
        FROM (SELECT id, row_number() OVER (PARTITION BY household_id, window_id, window_date
                                            ORDER BY credited DESC, scanned_at, id) AS place
              FROM checkin WHERE status = 'accepted' AND household_id IS NOT NULL AND window_id IS NOT NULL) AS r
        WHERE k.id = r.id AND r.place > 1""")
    op.drop_index('ux_checkin_credited_slot', table_name='checkin', postgresql_where=sa.text('credited'))
    op.create_index('ux_checkin_slot', 'checkin', ['household_id', 'window_id', 'window_date'], unique=True,
                    postgresql_where=sa.text("status = 'accepted'"))
    op.create_table(
        'checkin_amendment',
        sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column('community_id', sa.BigInteger(), nullable=False),
        sa.Column('checkin_id', sa.BigInteger(), nullable=False),
        sa.Column('from_result', sa.String(length=10), nullable=False),
        sa.Column('to_result', sa.String(length=10), nullable=False),
        sa.Column('reasons', sa.JSON(), nullable=False),
        sa.Column('points', sa.Integer(), nullable=False),
        sa.Column('credit_key', sa.String(length=64), nullable=True),
        sa.Column('amended_by', sa.BigInteger(), nullable=False),
        sa.Column('amended_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['amended_by'], ['app_user.id']),
        sa.ForeignKeyConstraint(['checkin_id'], ['checkin.id']),
        sa.ForeignKeyConstraint(['community_id'], ['community.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_checkin_amendment_checkin_id', 'checkin_amendment', ['checkin_id'])


def downgrade() -> None:
    op.drop_index('ix_checkin_amendment_checkin_id', table_name='checkin_amendment')
    op.drop_table('checkin_amendment')
    op.drop_index('ux_checkin_slot', table_name='checkin', postgresql_where=sa.text("status = 'accepted'"))
    op.create_index('ux_checkin_credited_slot', 'checkin', ['household_id', 'window_id', 'window_date'], unique=True,
                    postgresql_where=sa.text('credited'))
