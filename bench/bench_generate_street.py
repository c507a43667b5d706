"""How long the demo generator takes to build a 60,000-household street on PostgreSQL.

    TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/bench_generate_street.py

Plans 30 communities of 2,000 households (seed 1), builds them in a throwaway database, prints the time.
DAYS=90 also replays 90 days of activity in every community, WORKERS (default 2) at a time in separate
processes, prints what was replayed and its rate, runs `ledger verify` on the result, and with
RECORD=1 appends the figures to bench/RESULTS.md (with the load average: the machine is shared).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.chdir(Path(__file__).resolve().parents[1])
os.environ.setdefault("ENVIRONMENT", "test")
os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="jianfei-bench-"))
os.environ.setdefault("JWT_SECRET", "bench-secret-" + "x" * 40)
os.environ.setdefault("PHONE_HASH_KEY", "bench-phone-key")

from sqlalchemy import create_engine, text  # noqa: E402

COMMUNITIES = int(os.environ.get("COMMUNITIES", "30"))
HOUSEHOLDS = int(os.environ.get("HOUSEHOLDS", "2000"))
DAYS = int(os.environ.get("DAYS", "0"))  # days of activity to replay in every community
WORKERS = int(os.environ.get("WORKERS", "2"))


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
            from datetime import date

            from app.generator.activity import replay_street
            from app.ledger.verify import verify

            load_before = os.getloadavg()[0]
            started = time.perf_counter()
            a = replay_street(db_url, [(c.id, c.staff) for c in built.communities], seed=1, days=DAYS,
                              today=date(2026, 11, 23), workers=WORKERS)
            took = time.perf_counter() - started
            load_after = os.getloadavg()[0]
            total = {k: sum(getattr(x, k) for x in a.values()) for k in ("scans", "compost_drops", "weigh_ins", "redemptions", "harvests")}
            with Session(engine) as session:
                report = verify(session, None)
                entries = session.execute(text("SELECT count(*) FROM journal_entry")).scalar()
            print(f"  replay {DAYS} days of {built.households} households, {WORKERS} workers: {took:7.1f} s  "
                  f"({total['scans']:,} check-ins, {total['scans'] / took:,.0f}/s; {total['compost_drops']:,} compost drops, "
                  f"{total['weigh_ins']:,} weigh-ins, {total['redemptions']:,} redemptions, {total['harvests']} harvests; "
                  f"{entries:,} journal entries, {entries / took:,.0f}/s)")
            print(f"  ledger verify: {'clean' if report.clean else 'NOT CLEAN'} ({report.accounts_checked} accounts, "
                  f"{report.entries_checked} entries); load average {load_before:.1f} before, {load_after:.1f} after")
            if os.environ.get("RECORD"):
                from bench.common import record

                record("Demo street generator: replaying days (PostgreSQL)", [
                    f"`bench/bench_generate_street.py` COMMUNITIES={COMMUNITIES} HOUSEHOLDS={HOUSEHOLDS} DAYS={DAYS} WORKERS={WORKERS}: "
                    f"{built.households:,} households, {residents:,} residents.",
                    "",
                    "| replayed | time (s) | check-ins | compost drops | weigh-ins | redemptions | journal entries | per second |",
                    "|---|---|---|---|---|---|---|---|",
                    f"| {DAYS} days | {took:.1f} | {total['scans']:,} | {total['compost_drops']:,} | {total['weigh_ins']:,} "
                    f"| {total['redemptions']:,} | {entries:,} | {total['scans'] / took:,.0f} check-ins, {entries / took:,.0f} entries |",
                    "",
                    f"ledger verify: {'clean' if report.clean else 'NOT CLEAN'}. Load average {load_before:.1f} before, "
                    f"{load_after:.1f} after (the 2 cores are shared with other engineers' test suites).",
                ])
    finally:
        if engine is not None:
            engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
