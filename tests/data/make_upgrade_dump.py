"""Makes tests/data/upgrade-<revision>.dump: a small community's records at an earlier schema revision,
for tests/backup/test_upgrade.py (a dump from an earlier version, restored and migrated to head, keeps
its ledger and its reports). Each release adds one: run this with REVISION set to the release's head.

    TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \
        .venv/bin/python tests/data/make_upgrade_dump.py 0010

The records are made by the demo generator (seed 21: one community, 40 days up to 2026-11-20, as the
clock is set), their point totals exported (CSV) for the two months, then the database is migrated
down to REVISION and dumped with pg_dump -Fc. The exports are kept beside the dump: the test's exports
after the upgrade must equal them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
os.environ.setdefault("ENVIRONMENT", "test")
os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="jianfei-dump-"))
os.environ.setdefault("JWT_SECRET", "test-secret-" + "x" * 40)
os.environ.setdefault("PHONE_HASH_KEY", "test-phone-key")
MONTHS = ("2026-10", "2026-11")
NOW = datetime(2026, 11, 20, 20, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def main(revision: str) -> None:
    from typer.testing import CliRunner

    from app.backup.service import Connection, find_tool, server_major
    from app.core import clock
    from app.core.migrate import downgrade
    from bench.common import drop_database, fresh_database

    url = fresh_database("upgrade")
    os.environ["DATABASE_URL"] = url
    from app.cli import app

    clock.set(NOW, frozen=True)
    try:
        runner = CliRunner()
        r = runner.invoke(app, ["generate-demo", "--seed", "21", "--communities", "1", "--households", "10",
                                "--days", "40", "--workers", "1", "--residents", "0.5"])
        assert r.exit_code == 0, r.output
        for month in MONTHS:
            out = HERE / f"upgrade-{revision}.totals-{month}.csv"
            r = runner.invoke(app, ["reports", "export-totals", "--street", "1", "--month", month, "-o", str(out)])
            assert r.exit_code == 0, r.output
        downgrade(url, revision)
        conn = Connection.of(url)
        tool = find_tool("pg_dump", server_major(conn))
        subprocess.run([str(tool), "--format=custom", "--no-owner", "--no-privileges", "--compress=9",
                        f"--file={HERE / f'upgrade-{revision}.dump'}", f"--dbname={conn.url}"],
                       check=True, env=conn.env())
    finally:
        drop_database(url)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "0010")
