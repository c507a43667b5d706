"""Point totals export of a 60,000-household street with a year of activity, on PostgreSQL.

    TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python -m bench.bench_export

Builds the street with the demo generator (places), then a year of ledger activity written set-based in
SQL (INSERT ... SELECT generate_series): weekly check-ins with kitchen-waste weights, monthly recycling
weigh-ins, quarterly redemptions — every entry balanced against the community's system accounts,
household postings numbered with running balances, account balances equal to their postings.
With --generator the year (2025) is replayed through the services by the demo generator instead
(`generate-demo --days 365 --workers 2 --bulk-load`: about half an hour on the 2 cores).
Then, side by side in one run:
  * the XLSX export of the year's last month, in a fresh process (as `jianfei reports export-totals`
    runs it): time of the export, CPU time and peak RSS of that process — targets < 5 s, < 200 MB;
  * the CSV export, in a fresh process, against PostgreSQL's own COPY (query) TO STDOUT of the same
    query (the household rows, without the subtotals the export adds) — target: CSV ≤ 2× COPY — and
    of the export's own statement; each COPY builds and runs its statement as the export does (the
    point totals roll-up, `jianfei reports rollup`, is brought up to date first and timed), and a COPY
    of the household query read live from the journal is shown for reference.
The load average is recorded at the start and the end (the machine is shared).

`--keep` keeps the street's database and prints its URL; `--url URL` (or EXPORT_BENCH_URL, which
`bench/run.sh export` passes on) measures again on it without rebuilding (the build takes minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
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

COMMUNITIES = int(os.environ.get("COMMUNITIES", "30"))
HOUSEHOLDS = int(os.environ.get("HOUSEHOLDS", "2000"))
YEAR_START = "2025-01-01 00:00:00+08"
MONTH = "2025-12"

ACTIVITY_SQL = [
    # One household account per household, and the issued / redeemed system accounts per community.
    """INSERT INTO ledger_account (community_id, household_id, kind, balance, version)
       SELECT community_id, id, 'household', 0, 0 FROM household""",
    """INSERT INTO ledger_account (community_id, household_id, kind, balance, version)
       SELECT c.id, NULL, k.kind, 0, 0 FROM community c CROSS JOIN (VALUES ('issued'), ('redeemed')) AS k(kind)""",
    # A year: a kitchen-waste check-in every 7th day (5 points, 0.6-2.5 kg), a recycling weigh-in every
    # 30th day (paper or batteries, 3 points), a redemption of 20 points every 90th day from day 45.
    f"""INSERT INTO journal_entry (community_id, household_id, source, idempotency_key, memo, occurred_at, posted_at,
                                   quantity_g, category)
       SELECT h.community_id, h.id, k.source, 'bench:' || k.source || ':' || h.id || ':' || d, k.memo,
              TIMESTAMPTZ '{YEAR_START}' + d * INTERVAL '1 day' + INTERVAL '8 hours' + (h.id % 120) * INTERVAL '1 minute',
              TIMESTAMPTZ '{YEAR_START}' + d * INTERVAL '1 day' + INTERVAL '9 hours',
              CASE k.source WHEN 'checkin' THEN 600 + (h.id * 37 + d) % 1900
                            WHEN 'recycling' THEN 200 + (h.id * 53 + d) % 4000 END,
              CASE k.source WHEN 'checkin' THEN 'kitchen'
                            WHEN 'recycling' THEN CASE WHEN h.id % 10 = 0 THEN 'battery' ELSE 'paper' END END
       FROM household h
       CROSS JOIN generate_series(0, 364) AS d
       JOIN (VALUES ('checkin', '桶边督导 厨余 分类正确', 7, 0),
                    ('recycling', '资源回收日 纸类', 30, 0),
                    ('redemption', '兑换 洗洁精', 90, 45)) AS k(source, memo, every, phase)
         ON (d + h.id) % k.every = k.phase AND (k.source <> 'redemption' OR d >= 45)""",
    # Household postings in time order, with their place in the passbook and the running balance.
    """INSERT INTO posting (entry_id, account_id, amount, seq, balance_after)
       SELECT e.id, a.id, x.amount,
              row_number() OVER w,
              sum(x.amount) OVER w
       FROM journal_entry e
       JOIN ledger_account a ON a.household_id = e.household_id
       CROSS JOIN LATERAL (SELECT CASE e.source WHEN 'checkin' THEN 5 WHEN 'recycling' THEN 3 ELSE -20 END AS amount) x
       WINDOW w AS (PARTITION BY e.household_id ORDER BY e.occurred_at, e.id)""",
    # The other side of every entry: issued for credits, redeemed for redemptions.
    """INSERT INTO posting (entry_id, account_id, amount, seq, balance_after)
       SELECT e.id, s.id, -p.amount, NULL, NULL
       FROM journal_entry e
       JOIN posting p ON p.entry_id = e.id
       JOIN ledger_account s ON s.community_id = e.community_id AND s.household_id IS NULL
            AND s.kind = CASE WHEN e.source = 'redemption' THEN 'redeemed' ELSE 'issued' END""",
    """UPDATE ledger_account a SET balance = t.balance, version = t.n
       FROM (SELECT account_id, sum(amount) AS balance, count(*) AS n FROM posting WHERE seq IS NOT NULL GROUP BY account_id) t
       WHERE t.account_id = a.id""",
]


def build(url: str) -> dict:
    from sqlalchemy import text
    from sqlmodel import Session

    from app.core.db import make_engine
    from app.generator.plan import plan_street
    from app.generator.service import build_street

    engine = make_engine(url)
    t0 = time.perf_counter()
    with Session(engine) as session:
        built = build_street(session, plan_street(1, COMMUNITIES, HOUSEHOLDS), resident_share=0.0)
    places_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with engine.begin() as conn:
        for sql in ACTIVITY_SQL:
            t1 = time.perf_counter()
            conn.execute(text(sql))
            print(f"  {time.perf_counter() - t1:6.1f} s  {' '.join(sql.split())[:70]}", flush=True)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    ledger_s = time.perf_counter() - t0
    with engine.connect() as conn:
        unbalanced = conn.execute(text("SELECT count(*) FROM (SELECT entry_id FROM posting GROUP BY entry_id HAVING sum(amount) <> 0) t")).scalar()
        negative = conn.execute(text("SELECT count(*) FROM posting WHERE balance_after < 0")).scalar()
    assert unbalanced == 0 and negative == 0, (unbalanced, negative)
    return _built(engine, built, places_s, ledger_s)


def _built(engine, built, places_s: float, ledger_s: float) -> dict:
    from sqlalchemy import text

    with engine.connect() as conn:
        entries = conn.execute(text("SELECT count(*) FROM journal_entry")).scalar()
        postings = conn.execute(text("SELECT count(*) FROM posting")).scalar()
    engine.dispose()
    return {"street_id": built.street_id, "households": built.households, "entries": entries, "postings": postings,
            "places_s": places_s, "ledger_s": ledger_s}


def build_with_generator(url: str) -> dict:
    """The street and its year (2025) through the services: `jianfei generate-demo --days 365
    --workers 2 --bulk-load`, the way `bench/bench_generate_street.py` times it."""
    from datetime import date

    from sqlalchemy import text
    from sqlmodel import Session

    from app.generator.activity import replay_engine, replay_street
    from app.generator.plan import plan_street
    from app.generator.service import build_street
    from app.ledger.verify import verify

    engine = replay_engine(url)
    t0 = time.perf_counter()
    with Session(engine, expire_on_commit=False) as session:
        built = build_street(session, plan_street(1, COMMUNITIES, HOUSEHOLDS))
    places_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    replay_street(url, [(c.id, c.staff) for c in built.communities], seed=1, days=365, today=date(2026, 1, 1), workers=2, bulk_load=True,
                  done=lambda cid, a: print(f"  community {cid} replayed ({a.scans:,} check-ins), {time.perf_counter() - t0:7.1f} s", flush=True))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    ledger_s = time.perf_counter() - t0
    with Session(engine) as session:
        assert verify(session, None).clean
    return _built(engine, built, places_s, ledger_s)


def existing(url: str) -> dict:
    from sqlalchemy import text

    from app.core.db import make_engine

    engine = make_engine(url)
    with engine.connect() as conn:
        street_id = conn.execute(text("SELECT min(id) FROM street")).scalar()
        data = {
            "street_id": street_id,
            "households": conn.execute(text("SELECT count(*) FROM household")).scalar(),
            "entries": conn.execute(text("SELECT count(*) FROM journal_entry")).scalar(),
            "postings": conn.execute(text("SELECT count(*) FROM posting")).scalar(),
            "places_s": 0.0, "ledger_s": 0.0,
        }
    engine.dispose()
    return data


def child(fmt: str, url: str, street_id: int, out: str) -> None:
    """Runs in a fresh process: the export exactly as the CLI does it, timed from the first query."""
    os.environ["DATABASE_URL"] = url
    from sqlmodel import Session

    from app.core.db import get_engine
    from app.reports.scope import ScopeKind
    from app.reports.service import ExportFormat, export_totals

    engine = get_engine()  # the driver's import (psycopg, ~0.25 s) is the process's start, not the export's work
    t0 = time.perf_counter()
    with Session(engine) as session:
        export = export_totals(session, None, ScopeKind.street, street_id, ExportFormat(fmt), month=MONTH)
        size = 0
        with open(out, "wb") as f:
            for chunk in export.body:
                f.write(chunk)
                size += len(chunk)
    seconds = time.perf_counter() - t0
    # VmHWM is this process image's own peak: the fork's inherited high-water mark (which ru_maxrss
    # reports) is the parent's, i.e. the benchmark's, not the export's.
    peak_kb = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM"))
    print(json.dumps({"seconds": seconds, "bytes": size, "peak_rss_mb": peak_kb / 1024}))


def run_child(fmt: str, url: str, street_id: int, out: str) -> dict:
    proc = subprocess.Popen([sys.executable, "-m", "bench.bench_export", "--child", fmt, url, str(street_id), out],
                            stdout=subprocess.PIPE, cwd=Path(__file__).resolve().parents[1])
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    assert status == 0, output
    result = json.loads(output.decode().strip().splitlines()[-1])
    result["cpu_s"] = usage.ru_utime + usage.ru_stime  # the whole process, imports included
    return result


def copy_same_query(url: str, street_id: int, out: str, *, report: bool = False, live: bool = False) -> dict:
    """PostgreSQL's COPY (query) TO STDOUT WITH CSV, read by the client into a file. The query is the
    household rows of the export (totals_query); with report=True, the export's own statement with the
    subtotals (report_query), which the CSV export hands to COPY as it is. Either is built and run as the
    export does it (service.begin_export): a REPEATABLE READ transaction with the export's settings
    (service.PG_EXPORT_SETTINGS: work_mem, jit off) reading the roll-up's watermark and rows in its
    snapshot, so the baseline is the same statement under the same settings. live=True: the household
    query without the roll-up (every entry of the month read from the journal), for reference."""
    import psycopg
    from sqlmodel import Session

    from app.core.db import make_engine
    from app.kit.sql import _driver_connection, _pg_statement
    from app.reports.scope import ScopeKind, month_period, resolve
    from app.reports.service import begin_export
    from app.reports.totals import report_query, totals_query

    engine = make_engine(url)
    with Session(engine) as s:
        scope = resolve(s, None, ScopeKind.street, street_id)
    period = month_period(MONTH)
    lo, hi = period.bounds(scope.tz)
    try:
        with Session(engine) as s:
            t0 = time.perf_counter()
            rolled = begin_export(s, scope, period)  # reads the watermark: part of the statement's work
            if live:
                rolled = None
            stmt = (report_query(scope.community_ids, lo, hi, as_csv=True, rollup=rolled) if report
                    else totals_query(scope.community_ids, lo, hi, rolled))
            sql, params = _pg_statement(s, stmt)
            conn = _driver_connection(s)
            sql = psycopg.ClientCursor(conn).mogrify(sql, params)
            size = 0
            with conn.cursor() as cur, open(out, "wb") as f, cur.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER)") as copy:
                for block in copy:
                    f.write(block)
                    size += len(block)
            seconds = time.perf_counter() - t0
    finally:
        engine.dispose()
    return {"seconds": seconds, "bytes": size, "rollup": rolled is not None}


def refresh_rollup(url: str) -> dict:
    """`jianfei reports rollup` for the settings' time zone (the street's): the export reads the journal
    live only after its watermark."""
    from app.core.config import get_settings
    from app.core.db import make_engine
    from app.reports.rollup import refresh

    engine = make_engine(url)
    t0 = time.perf_counter()
    [done] = refresh(engine, [get_settings().timezone])
    engine.dispose()
    return {"seconds": time.perf_counter() - t0, "before": done.watermark_before, "watermark": done.watermark}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs=4, metavar=("FMT", "URL", "STREET", "OUT"))
    parser.add_argument("--keep", action="store_true", help="keep the database (prints its URL)")
    parser.add_argument("--url", default=os.environ.get("EXPORT_BENCH_URL"),
                        help="measure again on a database kept by an earlier --keep run (default: $EXPORT_BENCH_URL)")
    parser.add_argument("--generator", action="store_true", help="build the year through the services with the demo generator "
                        "(generate-demo --days 365 --bulk-load; about half an hour) instead of set-based SQL")
    args = parser.parse_args()
    if args.child:
        fmt, url, street, out = args.child
        child(fmt, url, int(street), out)
        return

    from bench.common import drop_database, fresh_database, record

    url = args.url or fresh_database("export")
    try:
        data = existing(url) if args.url else build_with_generator(url) if args.generator else build(url)
        how = ("an earlier run (kept database)" if args.url else
               "the demo generator, through the services" if args.generator else "set-based SQL")
        print(f"built with {how}: {data['households']:,} households, {data['entries']:,} entries, {data['postings']:,} postings "
              f"(places {data['places_s']:.1f} s, activity {data['ledger_s']:.1f} s)")
        tmp = Path(tempfile.mkdtemp(prefix="jianfei-export-"))
        rolled = refresh_rollup(url)
        print(f"roll-up: entries up to id {rolled['watermark']:,} (from {rolled['before']:,}) in {rolled['seconds']:.1f} s")
        load_start = os.getloadavg()
        runs = {"copy": [], "csv": [], "xlsx": [], "copy_report": [], "copy_live": []}
        for _ in range(3):  # alternate, so neither side gets a warmer cache
            runs["copy"].append(copy_same_query(url, data["street_id"], str(tmp / "copy.csv")))
            runs["csv"].append(run_child("csv", url, data["street_id"], str(tmp / "totals.csv")))
            runs["xlsx"].append(run_child("xlsx", url, data["street_id"], str(tmp / "totals.xlsx")))
            runs["copy_report"].append(copy_same_query(url, data["street_id"], str(tmp / "copy-report.csv"), report=True))
            runs["copy_live"].append(copy_same_query(url, data["street_id"], str(tmp / "copy-live.csv"), live=True))
        load_end = os.getloadavg()
        assert (tmp / "copy.csv").read_bytes() == (tmp / "copy-live.csv").read_bytes(), "the roll-up changed the figures"
        best = {k: min(v, key=lambda r: r["seconds"]) for k, v in runs.items()}
        peak = {k: max(r.get("peak_rss_mb", 0) for r in v) for k, v in runs.items()}
        ratio = best["csv"]["seconds"] / best["copy"]["seconds"]
        ratio_report = best["csv"]["seconds"] / best["copy_report"]["seconds"]
        xlsx_ok = best["xlsx"]["seconds"] < 5
        rss_ok = peak["xlsx"] < 200

        def each(k: str) -> str:
            return " / ".join(f"{r['seconds']:.2f}" for r in runs[k])

        def cpu(k: str) -> str:
            return " / ".join(f"{r['cpu_s']:.2f}" for r in runs[k])

        lines = [
            f"Street of {data['households']:,} households, {COMMUNITIES} communities; a year of activity"
            f"{' replayed by the demo generator through the services (built in %.0f s)' % (data['places_s'] + data['ledger_s']) if args.generator else ''}: "
            f"{data['entries']:,} journal entries, {data['postings']:,} postings. Export of one month ({MONTH}), best of 3, fresh process each. "
            f"Load average (1/5/15 min) {' / '.join(f'{x:.1f}' for x in load_start)} at the start, "
            f"{' / '.join(f'{x:.1f}' for x in load_end)} at the end (2 cores, shared).",
            "",
            "| what | time (s), best | each run (s) | process CPU (s), each run | size | peak RSS | target |",
            "|---|---|---|---|---|---|---|",
            f"| XLSX export (4 sheets) | {best['xlsx']['seconds']:.2f} | {each('xlsx')} | {cpu('xlsx')} | {best['xlsx']['bytes'] / 1e6:.1f} MB "
            f"| {peak['xlsx']:.0f} MB | < 5 s {'✓' if xlsx_ok else '✗'}, < 200 MB {'✓' if rss_ok else '✗'} |",
            f"| CSV export (with subtotals) | {best['csv']['seconds']:.2f} | {each('csv')} | {cpu('csv')} | {best['csv']['bytes'] / 1e6:.1f} MB "
            f"| {peak['csv']:.0f} MB | ≤ 2× COPY: {ratio:.2f}× the household query's {'✓' if ratio <= 2 else '✗'}, "
            f"{ratio_report:.2f}× the statement's |",
            f"| PostgreSQL COPY (household query) TO STDOUT | {best['copy']['seconds']:.2f} | {each('copy')} | — "
            f"| {best['copy']['bytes'] / 1e6:.1f} MB | — | baseline |",
            f"| PostgreSQL COPY (the export's statement, with subtotals) | {best['copy_report']['seconds']:.2f} | {each('copy_report')} | — "
            f"| {best['copy_report']['bytes'] / 1e6:.1f} MB | — | for reference |",
            f"| PostgreSQL COPY (household query, live: no roll-up) | {best['copy_live']['seconds']:.2f} | {each('copy_live')} | — "
            f"| {best['copy_live']['bytes'] / 1e6:.1f} MB | — | for reference |",
            "",
            f"Roll-up (`jianfei reports rollup`) brought up to date before the runs: entries up to id {rolled['watermark']:,} "
            f"(from {rolled['before']:,}) in {rolled['seconds']:.1f} s"
            f"{'' if all(r['rollup'] for r in runs['copy']) else ' — NOT used by the statement'}. "
            "The COPY runs build and run their statement as the export does (`reports.service.begin_export`: REPEATABLE READ, "
            "the export's settings, the roll-up read in that snapshot); the live COPY's CSV is byte-identical to the roll-up's. "
            "The exports' times include their whole work from the first query (scope, audit row, statement, file).",
        ]
        record("export", f"Point totals export ({data['households']:,} households, PostgreSQL)", lines,
               f"XLSX {best['xlsx']['seconds']:.2f} s, CSV {best['csv']['seconds']:.2f} s ({ratio:.2f}× COPY)"
               f"{', street built by the demo generator' if args.generator else ''}")
    finally:
        if args.keep or args.url:
            print("kept", url)
        else:
            drop_database(url)


if __name__ == "__main__":
    main()
