"""Benchmark: one offline batch of 1,000 scans on PostgreSQL (target: under 0.3 s).

    TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/bench_checkin_batch.py

Creates a throwaway database, migrates it, seeds one community with 1,000 households, one station
and 24 hourly drop-off windows (so every run scans fresh window slots), then times:
  - the service call (validate, resolve codes, record, credit through the ledger, commit),
  - the same through HTTP (JSON parsing and validation included, in-process client),
  - a re-sent batch (every scan a replay).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("JWT_SECRET", "bench-secret-" + "x" * 40)
os.environ.setdefault("PHONE_HASH_KEY", "bench-phone-key")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("SEED_DEMO", "false")

from sqlalchemy import create_engine, insert, select, text  # noqa: E402
from sqlmodel import Session  # noqa: E402

TARGET_S = 0.3
N = 1000
RUNS = 7


def admin_url() -> str:
    url = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def fresh_database() -> str:
    name = f"jf_bench_batch_{os.getpid()}"
    admin = create_engine(admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return admin_url().rsplit("/", 1)[0] + "/" + name


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = create_engine(admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def seed(engine):
    from app.checkins.models import DropWindow, Station
    from app.identity.models import Role, RoleGrant, User
    from app.places.models import Building, Community, Compound, Household, Street
    from app.places.service import qr_payload

    with Session(engine, expire_on_commit=False) as s:
        street = Street(city="上海市", district="徐汇区", name="压测街道")
        s.add(street)
        s.flush()
        community = Community(name="压测社区", street_id=street.id)
        s.add(community)
        s.flush()
        compound = Compound(name="压测小区", community_id=community.id)
        s.add(compound)
        s.flush()
        building = Building(name="1号楼", compound_id=compound.id, community_id=community.id)
        s.add(building)
        s.flush()
        s.execute(
            insert(Household.__table__),
            [
                {
                    "community_id": community.id, "building_id": building.id, "unit": "1", "door_plate": f"{i:04d}",
                    "members": 3, "status": "active", "public_code": f"B{i:07d}",
                    "created_at": datetime.now(UTC), "updated_at": datetime.now(UTC),
                }
                for i in range(N)
            ],
        )
        station = Station(community_id=community.id, name="东门")
        s.add(station)
        for hour in range(24):
            end = dtime(hour + 1) if hour < 23 else dtime(23, 59, 59, 999999)
            s.add(DropWindow(community_id=community.id, name=f"{hour}时", starts=dtime(hour), ends=end))
        volunteer = User(username="bench-volunteer", display_name="bench")
        s.add(volunteer)
        s.flush()
        s.add(RoleGrant(user_id=volunteer.id, role=Role.volunteer, community_id=community.id))
        s.commit()
        codes = [qr_payload(h) for h in s.scalars(select(Household).where(Household.community_id == community.id).order_by(Household.id))]
        return community.id, station.id, volunteer.id, codes


def main() -> None:
    from app.checkins import service
    from app.checkins.models import ScanBatch
    from app.core.db import make_engine, set_engine
    from app.core.migrate import upgrade
    from app.identity.auth import Grant, Principal
    from app.identity.models import Role

    url = fresh_database()
    try:
        upgrade(url)
        engine = make_engine(url)
        set_engine(engine)
        community_id, station_id, user_id, codes = seed(engine)
        principal = Principal(user_id=user_id, grants=(Grant(Role.volunteer, community_id),))
        now = datetime.now(UTC)

        def batch(hours_ago: int) -> list[dict]:
            at = now - timedelta(hours=hours_ago)
            return [
                {"client_id": uuid.uuid4().hex, "payload": c, "station_id": station_id, "result": "correct",
                 "scanned_at": (at - timedelta(seconds=i % 50)).isoformat()}
                for i, c in enumerate(codes)
            ]

        def timed_service(body: list[dict]) -> tuple[float, list]:
            scans = ScanBatch.model_validate({"scans": body}).scans
            with Session(engine, expire_on_commit=False) as s:
                t0 = time.perf_counter()
                results = service.record_scans(s, principal, community_id, scans)
                return time.perf_counter() - t0, results

        # Warm-up (caches, prepared plans, system account).
        timed_service(batch(1))
        service_times = []
        for k in range(RUNS):
            elapsed, results = timed_service(batch(2 + k))
            assert sum(r.status == "accepted" for r in results) == N, "every scan should be credited"
            service_times.append(elapsed)

        replay_body = batch(2 + RUNS)
        timed_service(replay_body)
        replay_times = [timed_service(replay_body)[0] for _ in range(3)]

        from fastapi.testclient import TestClient

        from app.identity.models import User
        from app.identity.service import issue_tokens
        from app.main import app

        with Session(engine) as s:
            token = issue_tokens(s, s.get(User, user_id)).access_token
        http_times = []
        with TestClient(app) as client:
            for k in range(RUNS):
                body = {"scans": batch(3 + RUNS + k)}
                t0 = time.perf_counter()
                r = client.post(f"/api/v1/communities/{community_id}/checkins/batch", json=body,
                                headers={"Authorization": f"Bearer {token}"})
                http_times.append(time.perf_counter() - t0)
                assert r.status_code == 200 and r.json()["accepted"] == N, r.text[:300]
        engine.dispose()
    finally:
        drop_database(url)

    def line(label: str, values: list[float]) -> str:
        med = statistics.median(values)
        verdict = "OK" if med < TARGET_S else "OVER TARGET"
        return f"{label:<44} median {med * 1000:7.1f} ms  best {min(values) * 1000:7.1f} ms  (target < {TARGET_S * 1000:.0f} ms: {verdict})"

    from bench.common import record

    load = os.getloadavg()[0]
    record(
        f"Offline batch of {N} scans (PostgreSQL, {RUNS} runs each)",
        [
            "```",
            line("service (record + credit + commit)", service_times),
            line("HTTP POST …/checkins/batch (in-process)", http_times),
            line("re-sent batch (all replays)", replay_times),
            "```",
            f"Load average at the end of the run: {load:.1f} (other work on the machine competes for the same cores).",
        ],
    )


if __name__ == "__main__":
    main()
