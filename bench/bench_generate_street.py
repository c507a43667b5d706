"""How long the demo generator takes to build a 60,000-household street on PostgreSQL.

    TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/bench_generate_street.py

Plans 30 communities of 2,000 households (seed 1), builds them in a throwaway database, prints the time.
DAYS=30 also replays 30 days of activity in the first community and prints the check-in throughput.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("ENVIRONMENT", "test")
os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="jianfei-bench-"))
os.environ.setdefault("JWT_SECRET", "bench-secret-" + "x" * 40)
os.environ.setdefault("PHONE_HASH_KEY", "bench-phone-key")

from sqlalchemy import create_engine, text  # noqa: E402

COMMUNITIES = int(os.environ.get("COMMUNITIES", "30"))
HOUSEHOLDS = int(os.environ.get("HOUSEHOLDS", "2000"))
DAYS = int(os.environ.get("DAYS", "0"))  # days of activity to replay in the first community


def main() -> None:
    url = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"jf_bench_street_{uuid.uuid4().hex[:6]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    db_url = url.rsplit("/", 1)[0] + "/" + name
    engine = None
    try:
        from sqlmodel import Session

        from app.core.db import make_engine
        from app.core.migrate import upgrade
        from app.generator.plan import plan_street
        from app.generator.service import build_street

        upgrade(db_url)
        engine = make_engine(db_url)
        started = time.perf_counter()
        plan = plan_street(1, COMMUNITIES, HOUSEHOLDS)
        planned = time.perf_counter() - started
        with Session(engine) as session:
            built = build_street(session, plan)
        total = time.perf_counter() - started
        residents = sum(c.residents for c in built.communities)
        print(f"demo street bench, PostgreSQL: {built.households} households, {len(built.communities)} communities, {residents} residents")
        print(f"  plan (seeded, no database)   {planned:6.2f} s")
        print(f"  plan + build                 {total:6.2f} s  ({built.households / total:,.0f} households/s)")
        if DAYS:
            from app.generator.activity import replay

            c = built.communities[0]
            started = time.perf_counter()
            with Session(engine) as session:
                a = replay(session, seed=1, community_id=c.id, staff=c.staff, days=DAYS)
            took = time.perf_counter() - started
            print(f"  replay {DAYS} days of {c.households} households: {took:6.2f} s  "
                  f"({a.scans} check-ins, {a.scans / took:,.0f}/s; {a.compost_drops} compost drops, "
                  f"{a.weigh_ins} weigh-ins, {a.redemptions} redemptions)")
    finally:
        if engine is not None:
            engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
