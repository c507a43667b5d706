"""pin resets: staff reset a household PIN for the resident to confirm; PIN guesses move to the throttle

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05

Existing PINs (4 to 12 digits) keep working until the resident changes them or a staff reset is
confirmed; new PINs are 6 digits. They count as set by the resident (pin_reset_by_user_id NULL), so
any clerk may spend with them. The wrong-PIN counters of pin_guard are dropped, not carried over:
PIN guesses are now counted in `throttle` (per staff member and per household), and a household
locked out at the upgrade is unlocked by it.
"""
import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('household', sa.Column('pin_reset_by_user_id', sa.BigInteger(), nullable=True))
    op.create_foreign_key('household_pin_reset_by_user_id_fkey', 'household', 'app_user', ['pin_reset_by_user_id'], ['id'])
    op.create_table(
        'pin_reset',
        sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column('community_id', sa.BigInteger(), nullable=False),
        sa.Column('household_id', sa.BigInteger(), nullable=False),
        sa.Column('idempotency_key', sa.String(length=80), nullable=False),
        sa.Column('pin_hash', sa.String(length=200), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('requested_by_user_id', sa.BigInteger(), nullable=False),
        sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('confirmed_by_user_id', sa.BigInteger(), nullable=True),
        sa.Column('confirmed_with', sa.String(length=8), nullable=True),
        sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['community_id'], ['community.id']),
        sa.ForeignKeyConstraint(['household_id'], ['household.id']),
        sa.ForeignKeyConstraint(['requested_by_user_id'], ['app_user.id']),
        sa.ForeignKeyConstraint(['confirmed_by_user_id'], ['app_user.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('household_id', 'idempotency_key', name='ux_pin_reset_household_key'),
    )
    op.drop_table('pin_guard')


def downgrade() -> None:
    op.create_table(
        'pin_guard',
        sa.Column('household_id', sa.BigInteger(), nullable=False),
        sa.Column('failures', sa.Integer(), server_default='0', nullable=False),
        sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['household_id'], ['household.id']),
        sa.PrimaryKeyConstraint('household_id'),
    )
    op.drop_table('pin_reset')
    op.drop_constraint('household_pin_reset_by_user_id_fkey', 'household', type_='foreignkey')
    op.drop_column('household', 'pin_reset_by_user_id')
    op.execute("DELETE FROM throttle WHERE key LIKE 'consent:%'")
