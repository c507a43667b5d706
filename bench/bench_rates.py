"""Rates, retention, relapse, the red and black list and the dashboard on one large community, on PostgreSQL.

    TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python -m bench.bench_rates

Builds one community with the demo generator (places: compounds, buildings, households), then
DAYS days of morning check-ins written set-based in SQL: each household checks in on about 60 % of
days, 1 check in 10 is incorrect, 1 in 200 is reversed. Then times each report as the service answers
it (the SQL and the shaping, not HTTP), median of a few runs, over the last month, the last quarter
and the whole span.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("ENVIRONMENT", "test")
os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="jianfei-bench-"))
os.environ.setdefault("JWT_SECRET", "bench-secret-" + "x" * 40)
os.environ.setdefault("PHONE_HASH_KEY", "bench-phone-key")
os.environ.setdefault("LOG_LEVEL", "WARNING")

HOUSEHOLDS = int(os.environ.get("HOUSEHOLDS", "5000"))
DAYS = int(os.environ.get("DAYS", "120"))
RUNS = int(os.environ.get("RUNS", "5"))

CHECKINS_SQL = """
INSERT INTO checkin (community_id, client_id, household_id, station_id, window_id, window_date, category, result,
                     reasons, status, credited, points, scanned_at, recorded_at, recorded_by)
SELECT h.community_id, 'bench:' || h.id || ':' || d, h.id, :station, :window, (:today - d)::date, 'kitchen',
       CASE WHEN (h.id * 7 + d) % 10 = 0 THEN 'incorrect' ELSE 'correct' END,
       CASE WHEN (h.id * 7 + d) % 10 = 0 THEN '["mixed"]'::json ELSE '[]'::json END,
       'accepted', (h.id * 7 + d) % 10 <> 0, 0,
       ((:today - d)::date + TIME '07:30') AT TIME ZONE 'Asia/Shanghai' + (h.id % 90) * INTERVAL '1 minute',
       now(), :user
FROM household h CROSS JOIN generate_series(0, :days - 1) AS d
WHERE h.community_id = :community AND (h.id * 13 + d * 7) % 10 < 6
"""
REVERSALS_SQL = """
INSERT INTO act_reversal (community_id, act, act_id, reason, at)
SELECT community_id, 'checkin', id, 'bench', now() FROM checkin WHERE community_id = :community AND id % 200 = 0
"""


def main() -> None:
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    from sqlalchemy import text
    from sqlmodel import Session

    from app.checkins.models import DropWindow, Station
    from app.core.db import make_engine, set_engine
    from app.generator.plan import plan_street
    from app.generator.service import build_street
    from app.identity.auth import Grant, Principal
    from app.identity.models import Role, User
    from app.reports import dashboard, rates
    from app.reports.rates import Level
    from bench.common import drop_database, fresh_database, record

    url = fresh_database("rates")
    engine = make_engine(url)
    set_engine(engine)
    try:
        t0 = time.perf_counter()
        with Session(engine) as s:
            built = build_street(s, plan_street(7, 1, HOUSEHOLDS), resident_share=0.0)
        community_id = built.communities[0].id
        with Session(engine) as s:
            user = User(username="bench-admin", display_name="bench")
            station = Station(community_id=community_id, name="bench station")
            window = DropWindow(community_id=community_id, name="bench", start_time="07:00", end_time="09:00")
            s.add_all([user, station, window])
            s.commit()
            ids = {"user": user.id, "station": station.id, "window": window.id}
        today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
        with engine.begin() as conn:
            conn.execute(text(CHECKINS_SQL), {**ids, "community": community_id, "today": today, "days": DAYS})
            conn.execute(text(REVERSALS_SQL), {"community": community_id})
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
            rows = conn.execute(text("SELECT count(*) FROM checkin")).scalar()
            households = conn.execute(text("SELECT count(*) FROM household")).scalar()
            buildings = conn.execute(text("SELECT count(*) FROM building")).scalar()
        build_s = time.perf_counter() - t0
        admin = Principal(user_id=ids["user"], grants=(Grant(Role.platform_admin),))
        month = today.strftime("%Y-%m")
        quarter = {"start": today - timedelta(days=89), "end": today}
        span = {"start": today - timedelta(days=DAYS - 1), "end": today}
        cases = {
            "rates by building, this month": lambda s: rates.rates(s, admin, community_id, Level.building, month=month),
            "rates by building, 90 days": lambda s: rates.rates(s, admin, community_id, Level.building, **quarter),
            f"rates by compound, {DAYS} days": lambda s: rates.rates(s, admin, community_id, Level.compound, **span),
            "red/black list by building, this month": lambda s: rates.red_black_list(s, admin, community_id, Level.building, month=month),
            "retention by building, this month": lambda s: rates.retention(s, admin, community_id, Level.building, month),
            "relapse by building, 30-day campaign": lambda s: rates.relapse(
                s, admin, community_id, Level.building, start=today - timedelta(days=59), end=today - timedelta(days=30), challenge_id=None),
            "dashboard (30 days, 12 months)": lambda s: dashboard.build(s, admin, community_id),
        }
        lines = [f"One community: {households:,} households in {buildings} buildings, {rows:,} check-ins over {DAYS} days "
                 f"(built in {build_s:.0f} s). Service call (SQL + shaping), median of {RUNS} runs:", "",
                 "| report | median | slowest |", "|---|---|---|"]
        medians = {}
        for name, fn in cases.items():
            samples = []
            for _ in range(RUNS):
                with Session(engine) as s:
                    t1 = time.perf_counter()
                    fn(s)
                    samples.append((time.perf_counter() - t1) * 1000)
            samples.sort()
            lines.append(f"| {name} | {samples[len(samples) // 2]:.0f} ms | {samples[-1]:.0f} ms |")
            medians[name] = samples[len(samples) // 2]
        record("rates", "Rates, 红黑榜 and dashboard on one large community", lines,
               f"rates 90 days {medians['rates by building, 90 days']:.0f} ms, 红黑榜 "
               f"{medians['red/black list by building, this month']:.0f} ms, dashboard {medians['dashboard (30 days, 12 months)']:.0f} ms")
    finally:
        engine.dispose()
        drop_database(url)


if __name__ == "__main__":
    main()
