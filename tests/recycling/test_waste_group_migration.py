"""The migration that makes a category's waste group data: existing rates get their code's default group
(废油漆 `paint` is hazardous, not a recyclable), and it goes down and up again cleanly."""

from __future__ import annotations

from sqlalchemy import inspect, text

from app.core.db import make_engine
from app.core.migrate import downgrade, upgrade
from app.recycling.groups import default_group
from tests.conftest import drop_pg_database, fresh_pg_database

BEFORE, THIS = "0016", "m16waste_1"
CODES = ("paint", "battery", "paper", "milk_carton", "food_waste", "residual", "clothes")


def test_existing_rates_get_their_default_group_and_the_migration_goes_down_and_up():
    url = fresh_pg_database("wastegroup")
    engine = make_engine(url)
    try:
        upgrade(url, BEFORE)
        with engine.begin() as conn:
            street = conn.execute(text("INSERT INTO street (city, district, name, created_at) VALUES ('上海市', '徐汇区', '测试街道', now()) RETURNING id")).scalar()
            community = conn.execute(text("INSERT INTO community (name, timezone, street_id, created_at) VALUES ('测试社区', 'Asia/Shanghai', :s, now()) RETURNING id"), {"s": street}).scalar()
            for code in CODES:
                conn.execute(text("INSERT INTO recycling_rate (code, name, points, notes, community_id, unit, active, updated_at) "
                                  "VALUES (:code, :code, 5, '', :c, 'kg', true, now())"), {"code": code, "c": community})
            conn.execute(text("INSERT INTO point_rollup_state (timezone, watermark, updated_at) VALUES ('Asia/Shanghai', 42, now())"))
        upgrade(url, THIS)
        with engine.connect() as conn:
            groups = dict(conn.execute(text("SELECT code, waste_group FROM recycling_rate")).all())
        assert groups == {code: default_group(code).value for code in CODES}
        assert (groups["paint"], groups["paper"], groups["food_waste"], groups["residual"]) == ("hazardous", "recyclable", "kitchen", "other")
        assert not {"g_kitchen", "g_recyclable", "g_hazardous", "g_other"} & {c["name"] for c in inspect(engine).get_columns("household_month_points")}
        with engine.connect() as conn:  # the roll-up keeps its points (it never held kilograms it should keep)
            assert conn.execute(text("SELECT watermark FROM point_rollup_state")).scalar() == 42
        downgrade(url, BEFORE)
        inspector = inspect(engine)
        assert "waste_group" not in {c["name"] for c in inspector.get_columns("recycling_rate")}
        assert {"g_kitchen", "g_other"} <= {c["name"] for c in inspector.get_columns("household_month_points")}
        with engine.connect() as conn:  # the old roll-up summed ledger kilograms: it starts over
            assert conn.execute(text("SELECT count(*) FROM point_rollup_state")).scalar() == 0
            assert conn.execute(text("SELECT count(*) FROM recycling_rate")).scalar() == len(CODES)
        upgrade(url)
    finally:
        engine.dispose()
        drop_pg_database(url)
