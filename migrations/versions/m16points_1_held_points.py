"""ledger_account.held: points held by open reservations, apart from the spendable balance;
the point-totals roll-up gains held and hand-over columns and is rebuilt (corrections now count
in the month they happen).

Back-dated records (补录): points_rule, recycling_event, weigh_in and activity carry the committee's reason
(backdate_reason); an activity recorded after its late window is marked backdated.

Existing reservations are migrated: each household's held points are its share of the `held`
account (its open reservations' holds, less what was handed over or released).

Revision ID: m16points_1
Revises: i21_1
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op

revision = 'm16points_1'
down_revision = 'i21_1'
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
    for table in ('points_rule', 'recycling_event', 'weigh_in', 'activity'):
        op.add_column(table, sa.Column('backdate_reason', sa.String(length=200), nullable=True))
    op.add_column('activity', sa.Column('backdated', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    op.drop_column('activity', 'backdated')
    for table in ('points_rule', 'recycling_event', 'weigh_in', 'activity'):
        op.drop_column(table, 'backdate_reason')
    _rebuild_rollup()
    op.drop_column('household_month_points', 'held')
    op.drop_column('household_month_points', 'held_net')
    op.drop_constraint('ck_ledger_account_held_not_negative', 'ledger_account', type_='check')
    op.drop_column('ledger_account', 'held')
