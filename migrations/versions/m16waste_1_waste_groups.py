"""recycling_rate.waste_group (GB/T 19095-2019), backfilled from the code's default group; the point
roll-up loses its kilogram columns (kilograms come from the records, app.reports.measures.waste); an index
on the check-ins that carry a weight

Revision ID: m16waste_1
Revises: 0016
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op

revision = 'm16waste_1'
down_revision = '0016'
branch_labels = None
depends_on = None

# The defaults as they stood when this migration was written (app.recycling.groups.DEFAULT_GROUPS).
HAZARDOUS = ("hazardous", "battery", "batteries", "button_battery", "lamp", "bulb", "fluorescent_lamp", "medicine",
             "expired_medicine", "paint", "paint_can", "pesticide", "thermometer", "mercury", "solvent", "x_ray_film")
KITCHEN = ("kitchen", "food", "food_waste", "compost", "fruit_peel", "leaves")
OTHER = ("other", "residual", "dry")
GRAMS = ('g_kitchen', 'g_recyclable', 'g_hazardous', 'g_other')


def _in(codes) -> str:
    return ", ".join(f"'{c}'" for c in codes)


def upgrade() -> None:
    op.add_column('recycling_rate', sa.Column('waste_group', sa.String(length=12), nullable=True))
    op.execute(
        "UPDATE recycling_rate SET waste_group = CASE"
        f" WHEN code IN ({_in(HAZARDOUS)}) THEN 'hazardous'"
        f" WHEN code IN ({_in(KITCHEN)}) THEN 'kitchen'"
        f" WHEN code IN ({_in(OTHER)}) THEN 'other'"
        " ELSE 'recyclable' END"
    )
    op.alter_column('recycling_rate', 'waste_group', nullable=False)
    op.create_check_constraint(
        'ck_recycling_rate_waste_group', 'recycling_rate', "waste_group IN ('recyclable', 'hazardous', 'kitchen', 'other')"
    )
    for name in GRAMS:
        op.drop_column('household_month_points', name)
    op.create_index('ix_checkin_weighed', 'checkin', ['community_id', 'scanned_at'], unique=False,
                    postgresql_where=sa.text('weight_g IS NOT NULL'))


def downgrade() -> None:
    op.drop_index('ix_checkin_weighed', table_name='checkin', postgresql_where=sa.text('weight_g IS NOT NULL'))
    for name in GRAMS:
        op.add_column('household_month_points', sa.Column(name, sa.BigInteger(), server_default='0', nullable=False))
    # The roll-up summed kilograms from the ledger before: start it over, so the next refresh refills them.
    op.execute("DELETE FROM household_month_points")
    op.execute("DELETE FROM point_rollup_state")
    op.drop_constraint('ck_recycling_rate_waste_group', 'recycling_rate', type_='check')
    op.drop_column('recycling_rate', 'waste_group')
