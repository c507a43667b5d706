"""Backup and restore drill of the 60,000-household street with a year of activity, on PostgreSQL.

    TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python -m bench.bench_backup

Builds the street as bench/bench_export.py does (the demo generator's places, a year of ledger
activity in set-based SQL), or takes a kept one (`--url`, or EXPORT_BENCH_URL: a street kept with
`bench/bench_export.py --keep`). Then, as an operator would:
  * `jianfei backup` (app.backup.service.backup): pg_dump custom format, the archive read back with
    pg_restore --list, its SHA-256 — time and size;
  * `jianfei restore` into an empty database (checksum, table of contents, pg_restore in one
    transaction, migrate to head) — time;
  * `ledger verify` on the restored database — time, and it must be clean;
  * the restored tables' row counts equal to the source's.
The load average is recorded at the start and the end (the machine is shared).
"""

from __future__ import annotations

import argparse
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


def row_counts(url: str) -> dict[str, int]:
    from sqlalchemy import text

    from app.core.db import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            tables = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")).scalars().all()
            return {t: conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one() for t in tables}
    finally:
        engine.dispose()


def empty_database() -> str:
    """A new database with nothing in it (not migrated: a restore wants an empty one)."""
    import uuid

    from sqlalchemy import create_engine, text

    base = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    base = base.replace("postgresql://", "postgresql+psycopg://", 1)
    name = f"bench_restore_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.rsplit("/", 1)[0] + "/" + name


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default=os.environ.get("EXPORT_BENCH_URL"), help="a street kept by bench_export.py --keep")
    parser.add_argument("--keep", action="store_true", help="keep the street's database (prints its URL)")
    args = parser.parse_args()

    from sqlmodel import Session

    from app.backup.service import backup, restore
    from app.core.db import make_engine
    from app.ledger.verify import verify
    from bench.bench_export import build, existing
    from bench.common import drop_database, fresh_database, record

    url = args.url or fresh_database("backup")
    target = None
    try:
        data = existing(url) if args.url else build(url)
        print(f"street: {data['households']:,} households, {data['entries']:,} entries, {data['postings']:,} postings")
        load_start = os.getloadavg()
        folder = Path(tempfile.mkdtemp(prefix="jianfei-backup-"))
        t0 = time.perf_counter()
        done = backup(url, folder)
        backup_s = time.perf_counter() - t0
        target = empty_database()
        t0 = time.perf_counter()
        restored = restore(done.path, target)
        restore_s = time.perf_counter() - t0
        engine = make_engine(target)
        t0 = time.perf_counter()
        with Session(engine) as session:
            report = verify(session)
        verify_s = time.perf_counter() - t0
        engine.dispose()
        load_end = os.getloadavg()
        assert report.clean, "the restored ledger does not verify"
        source, copy = row_counts(url), row_counts(target)
        assert source == copy, {t: (source.get(t), copy.get(t)) for t in set(source) | set(copy) if source.get(t) != copy.get(t)}
        done.path.unlink()
        lines = [
            f"Street of {data['households']:,} households; {data['entries']:,} journal entries, {data['postings']:,} postings "
            f"(bench_export.py's set-based year). Load average (1/5/15 min) {' / '.join(f'{x:.1f}' for x in load_start)} at the start, "
            f"{' / '.join(f'{x:.1f}' for x in load_end)} at the end (2 cores, shared).",
            "",
            "| step | time | |",
            "|---|---|---|",
            f"| `jianfei backup` (pg_dump -Fc, pg_restore --list, SHA-256) | {backup_s:.1f} s | {done.bytes / 2**20:.1f} MiB |",
            f"| `jianfei restore` into an empty database (checks, pg_restore --single-transaction, migrate) | {restore_s:.1f} s | "
            f"{restored.entries} archive entries |",
            f"| `ledger verify` of the restored database | {verify_s:.1f} s | {report.accounts_checked:,} accounts, clean |",
            f"| restore drill in all | {backup_s + restore_s + verify_s:.1f} s | every table's row count equal |",
        ]
        record("backup", "Backup and restore drill (bench_backup.py)", lines,
               f"backup {backup_s:.1f} s ({done.bytes / 2**20:.0f} MiB), restore {restore_s:.1f} s, verify {verify_s:.1f} s")
    finally:
        if target:
            drop_database(target)
        if args.keep and not args.url:
            print(f"kept: {url}")
        elif not args.url:
            drop_database(url)


if __name__ == "__main__":
    main()
