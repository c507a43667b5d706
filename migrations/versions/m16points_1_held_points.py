"""ledger_account.held: points held by open reservations, apart from the spendable balance;
the point-totals roll-up gains held and hand-over columns and is rebuilt (corrections now count
in the month they happen).

Existing reservations are migrated: each household's held points are its share of the `held`
account (its open reservations' holds, less what was handed over or released).

Revision ID: m16points_1
Revises: 0016
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op

revision = 'm16points_1'
down_revision = '0016'
branch_labels = None
depends_on = None

_HELD_FROM_POSTINGS = """
UPDATE ledger_account AS a SET held = s.held
FROM (
    SELECT e.household_id, sum(p.amount) AS held
    FROM posting AS p
    JOIN ledger_account AS h ON h.id = p.account_id AND h.kind = 'held' AND h.household_id IS NULL
    JOIN journal_entry AS e ON e.id = p.entry_id
    WHERE e.household_id IS NOT NULL
    GROUP BY e.household_id
) AS s
WHERE a.household_id = s.household_id AND s.held <> 0
"""


def _rebuild_rollup() -> None:
    # The roll-up is derived: emptied here, the next refresh (nightly job or `jianfei reports rollup`)
    # sums it again under the current rules; meanwhile exports read the journal.
    op.execute("DELETE FROM household_month_points")
    op.execute("DELETE FROM point_rollup_state")


def upgrade() -> None:
    op.add_column('ledger_account', sa.Column('held', sa.BigInteger(), server_default='0', nullable=False))
    op.create_check_constraint('ck_ledger_account_held_not_negative', 'ledger_account', 'held >= 0')
    op.execute(_HELD_FROM_POSTINGS)
    op.add_column('household_month_points', sa.Column('held_net', sa.BigInteger(), server_default='0', nullable=False))
    op.add_column('household_month_points', sa.Column('held', sa.BigInteger(), server_default='0', nullable=False))
    _rebuild_rollup()


def downgrade() -> None:
    _rebuild_rollup()
    op.drop_column('household_month_points', 'held')
    op.drop_column('household_month_points', 'held_net')
    op.drop_constraint('ck_ledger_account_held_not_negative', 'ledger_account', type_='check')
    op.drop_column('ledger_account', 'held')
