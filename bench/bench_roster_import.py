"""How long a 10,000-household roster takes to import on PostgreSQL (target: under 10 s).

    TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/bench_roster_import.py

Creates a throwaway database, a community with 40 buildings, then times through the HTTP API:
a dry run, the first import (10,000 creates), a re-import (nothing changes) and an import where
every row changes (10,000 updates), from CSV and from XLSX. Prints one line per figure.
"""

from __future__ import annotations

import csv
import io
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
os.environ.setdefault("LOG_LEVEL", "WARNING")

from fastapi.testclient import TestClient  # noqa: E402
from openpyxl import Workbook  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlmodel import Session  # noqa: E402

from bench.common import record  # noqa: E402

ROWS = int(os.environ.get("ROWS", "10000"))
BUILDINGS = 40
TARGET_S = 10  # seconds for a 10,000-row import


def _admin_url() -> str:
    url = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def _roster(members_offset: int) -> list[list[object]]:
    rows: list[list[object]] = [["楼栋", "单元", "门牌", "人数", "电话", "姓名"]]
    per_building = ROWS // BUILDINGS
    for b in range(1, BUILDINGS + 1):
        for i in range(per_building):
            unit, rest = divmod(i, per_building // 2)
            floor, door = divmod(rest, 4)
            rows.append([f"{b}号楼", unit + 1, f"{floor + 1}{door + 1:02d}", 1 + (i + members_offset) % 5,
                         f"139{b:03d}{i:05d}", "居民"])
    return rows


def _csv(rows) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode("utf-8-sig")


def _xlsx(rows) -> bytes:
    wb = Workbook(write_only=True)
    ws = wb.create_sheet()
    for r in rows:
        ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def main() -> None:
    admin = create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    name = f"jf_bench_roster_{uuid.uuid4().hex[:6]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = _admin_url().rsplit("/", 1)[0] + "/" + name
    os.environ["DATABASE_URL"] = url
    try:
        run(url)
    finally:
        from app.core.db import get_engine

        get_engine().dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def run(url: str) -> None:
    from app.core.db import get_engine
    from app.core.migrate import upgrade
    from app.identity.models import Role, RoleGrant, User
    from app.identity.service import issue_tokens
    from app.main import app
    from app.places.models import Building, Community, Compound, Street

    upgrade(url)
    with Session(get_engine()) as s:
        street = Street(city="苏州市", district="昆山市", name="基准街道")
        s.add(street)
        s.flush()
        community = Community(name="基准社区", street_id=street.id)
        s.add(community)
        s.flush()
        compound = Compound(name="一期", community_id=community.id)
        s.add(compound)
        s.flush()
        for b in range(1, BUILDINGS + 1):
            s.add(Building(name=f"{b}号楼", compound_id=compound.id, community_id=community.id))
        user = User(username="bench-committee")
        s.add(user)
        s.flush()
        s.add(RoleGrant(user_id=user.id, role=Role.committee, community_id=community.id))
        s.commit()
        token = issue_tokens(s, user).access_token
        community_id = community.id

    client = TestClient(app)
    headers = {"Authorization": f"Bearer {token}"}

    def upload(data: bytes, filename: str, mode: str) -> tuple[float, dict]:
        started = time.perf_counter()
        r = client.post(
            f"/api/v1/communities/{community_id}/roster-imports",
            files={"file": (filename, data, "application/octet-stream")},
            data={"mode": mode},
            # Each upload a new key, as the committee's page sends one (the same file again without one
            # within 10 minutes is taken for a retry and answered with the first report).
            headers=headers | {"Idempotency-Key": f"bench-{uuid.uuid4().hex}"},
        )
        elapsed = time.perf_counter() - started
        assert r.status_code == 201, r.text
        return elapsed, r.json()

    first, changed = _roster(0), _roster(1)
    rows, seconds = [], {}

    def step(name: str, data: bytes, filename: str, mode: str, what: str, target: bool = False) -> None:
        t, rep = upload(data, filename, mode)
        counts = ", ".join(f"{k.replace('_count', 's')} {rep[k]}" for k in what.split())
        print(f"  {name:<32} {t:6.2f} s  ({counts})")
        seconds[name] = t
        rows.append(f"| {name} ({counts}) | {t:.2f} | {f'< {TARGET_S} s ' + ('✓' if t < TARGET_S else '✗') if target else ''} |")

    print(f"roster import bench, PostgreSQL, {ROWS} rows, {BUILDINGS} buildings")
    data = _csv(first)
    step("CSV dry run", data, "roster.csv", "dry_run", "created error_count")
    step("CSV first import", data, "roster.csv", "valid_rows", "created", target=True)
    step("CSV re-import, nothing changes", data, "roster.csv", "valid_rows", "created unchanged")
    step("XLSX, every row changed", _xlsx(changed), "roster.xlsx", "valid_rows", "updated", target=True)
    step("XLSX re-import, nothing changes", _xlsx(changed), "roster.xlsx", "valid_rows", "unchanged")
    record("roster", f"Roster import, {ROWS:,} rows (HTTP API, PostgreSQL)", [
        f"`bench/bench_roster_import.py`: {BUILDINGS} buildings, phones on every row, each upload with its own Idempotency-Key.",
        "", "| step | seconds | target |", "|---|---|---|", *rows],
        f"CSV first import {seconds['CSV first import']:.2f} s, XLSX every row changed {seconds['XLSX, every row changed']:.2f} s")

if __name__ == "__main__":
    main()
