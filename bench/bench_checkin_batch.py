"""Benchmark: one offline batch of 1,000 scans on PostgreSQL (target: under 0.3 s).

    TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/bench_checkin_batch.py

Creates a throwaway database, migrates it, seeds one community with 1,000 households, one station
and 24 hourly drop-off windows (so every run scans fresh window slots), then times:
  - the service call (validate, resolve codes, record, credit through the ledger, commit), in a
    started app (its lifespan has run, as in a server worker),
  - the same through HTTP, in-process (JSON parsing and validation included, Starlette's test client),
  - the same through HTTP against a real server: scripts/docker-entrypoint.sh (granian, 2 workers,
    production settings), one keep-alive connection, the request body encoded beforehand,
  - a re-sent batch (every scan a replay).
Besides wall time (which other work on the shared machine inflates), each line gives the CPU time
spent per batch: by this process (or the server's workers) and by the PostgreSQL backends.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import sys
import tempfile
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
            s.add(DropWindow(community_id=community.id, name=f"{hour}时", start_time=dtime(hour), end_time=end))
        volunteer = User(username="bench-volunteer", display_name="bench")
        s.add(volunteer)
        s.flush()
        s.add(RoleGrant(user_id=volunteer.id, role=Role.volunteer, community_id=community.id))
        s.commit()
        codes = [qr_payload(h) for h in s.scalars(select(Household).where(Household.community_id == community.id).order_by(Household.id))]
        return community.id, station.id, volunteer.id, codes


# --- CPU time, per process, from /proc (nanoseconds on the CPU; PostgreSQL runs on this machine) ---

def _cpu_ns(pid: int) -> int:
    """All threads of the process (a thread's time stays in the sum only while it lives)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            total += int(task.read_text().split()[0])
        except (OSError, IndexError, ValueError):
            continue
    return total


class CpuMeter:
    """CPU seconds used by a set of processes between start() and stop()."""

    def __init__(self, pids):
        self.pids = pids  # a callable: the processes to count, looked up at each start()

    def start(self) -> None:
        self.before = {p: _cpu_ns(p) for p in self.pids()}

    def stop(self) -> float:
        return sum(max(_cpu_ns(p) - ns, 0) for p, ns in self.before.items()) / 1e9


def backend_pids(engine) -> list[int]:
    """The PostgreSQL backends connected to the benchmark database (pooled connections stay; the one
    asking is among them: the next batch may run on it)."""
    with engine.connect() as conn:
        return list(conn.execute(text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend'"
        )).scalars())


class Timings:
    def __init__(self) -> None:
        self.wall: list[float] = []
        self.app_cpu: list[float] = []
        self.db_cpu: list[float] = []

    def median_ms(self) -> float:
        return statistics.median(self.wall) * 1000

    def line(self, label: str, app: str) -> str:
        med = statistics.median(self.wall)
        verdict = "OK" if med < TARGET_S else "OVER TARGET"
        cpu = ""
        if self.app_cpu:
            cpu = f"; CPU {app} {statistics.median(self.app_cpu) * 1000:5.1f} + PostgreSQL {statistics.median(self.db_cpu) * 1000:5.1f} ms"
        return (f"{label:<44} median {med * 1000:7.1f} ms  best {min(self.wall) * 1000:7.1f} ms"
                f"  (target < {TARGET_S * 1000:.0f} ms: {verdict}){cpu}")


def main() -> None:
    from fastapi.testclient import TestClient

    from app.checkins import service
    from app.checkins.models import ScanBatch
    from app.core.db import make_engine, set_engine
    from app.core.migrate import upgrade
    from app.identity.auth import Grant, Principal
    from app.identity.models import Role, User
    from app.identity.service import issue_tokens
    from app.main import app
    from bench.checkin import free_port, group_pids, start_server, stop_server

    url = fresh_database()
    server = None
    try:
        upgrade(url)
        engine = make_engine(url)
        set_engine(engine)
        community_id, station_id, user_id, codes = seed(engine)
        principal = Principal(user_id=user_id, grants=(Grant(Role.volunteer, community_id),))
        with Session(engine) as s:
            token = issue_tokens(s, s.get(User, user_id)).access_token
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        path = f"/api/v1/communities/{community_id}/checkins/batch"
        now = datetime.now(UTC)
        hours = iter(range(1, 72))  # each batch an hour further back: fresh window slots, within the 72 h limit

        def batch() -> list[dict]:
            # Half past the hour, minus up to 49 s: every scan of a batch in the same hourly window.
            at = (now - timedelta(hours=next(hours))).replace(minute=30, second=0, microsecond=0)
            return [
                {"client_id": uuid.uuid4().hex, "payload": c, "station_id": station_id, "result": "correct",
                 "scanned_at": (at - timedelta(seconds=i % 50)).isoformat()}
                for i, c in enumerate(codes)
            ]

        here = CpuMeter(lambda: [os.getpid()])
        database = CpuMeter(lambda: backend_pids(engine))

        def timed(timings: Timings, call, app_meter: CpuMeter = here) -> object:
            database.start()
            app_meter.start()
            t0 = time.perf_counter()
            result = call()
            timings.wall.append(time.perf_counter() - t0)
            timings.app_cpu.append(app_meter.stop())
            timings.db_cpu.append(database.stop())
            return result

        def service_call(body: list[dict]):
            scans = ScanBatch.model_validate({"scans": body}).scans
            with Session(engine, expire_on_commit=False) as s:
                return service.record_scans(s, principal, community_id, scans)

        service_times, replay_times, inprocess_times, server_times = Timings(), Timings(), Timings(), Timings()
        with TestClient(app) as client:  # the app started: its lifespan has run, as in a server worker
            service_call(batch())  # warm-up (caches, prepared plans, system account)
            for _ in range(RUNS):
                body = batch()
                results = timed(service_times, lambda body=body: service_call(body))
                assert sum(r.status == "accepted" for r in results) == N, "every scan should be credited"

            replay_body = batch()
            service_call(replay_body)
            for _ in range(3):
                timed(replay_times, lambda: service_call(replay_body))

            for _ in range(RUNS):
                raw = json.dumps({"scans": batch()}).encode()
                r = timed(inprocess_times, lambda raw=raw: client.post(path, content=raw, headers=headers))
                assert r.status_code == 200 and r.json()["accepted"] == N, r.text[:300]
        engine.dispose()

        # A real server, started as the container starts it.
        port = free_port()
        server = start_server(url.replace("postgresql+psycopg://", "postgresql://", 1), port, 2,
                              Path(tempfile.mkdtemp(prefix="batch-")) / "server.log")
        workers = CpuMeter(lambda: group_pids(server.pid))
        engine = make_engine(url)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

        def post(raw: bytes) -> dict:
            conn.request("POST", path, body=raw, headers=headers)
            response = conn.getresponse()
            answer = response.read()
            assert response.status == 200, answer[:300]
            return json.loads(answer)

        for _ in range(2):  # warm-up of the worker holding this connection
            post(json.dumps({"scans": batch()}).encode())
        for _ in range(RUNS):
            raw = json.dumps({"scans": batch()}).encode()
            answer = timed(server_times, lambda raw=raw: post(raw), workers)
            assert answer["accepted"] == N, str(answer)[:300]
        conn.close()
        engine.dispose()
    finally:
        if server is not None:
            stop_server(server)
        drop_database(url)

    from bench.common import record

    load = os.getloadavg()
    record(
        "batch",
        f"Offline batch of {N} scans (PostgreSQL, {RUNS} runs each)",
        [
            "```",
            service_times.line("service (record + credit + commit)", "here"),
            inprocess_times.line("HTTP POST …/checkins/batch (in-process)", "here"),
            server_times.line("HTTP POST …/checkins/batch (granian, 2 workers)", "workers"),
            replay_times.line("re-sent batch (all replays)", "here"),
            "```",
            f"Load average at the end of the run: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min; other work "
            f"on the machine competes for the same {os.cpu_count()} cores). CPU: median seconds on the CPU per batch, "
            "of this process (its threads: test client, event loop, worker) or the server's workers, and of the "
            "PostgreSQL backends of the benchmark database.",
        ],
        f"median {service_times.median_ms():.1f} ms service, {inprocess_times.median_ms():.1f} ms HTTP in-process, "
        f"{server_times.median_ms():.1f} ms through granian",
    )


if __name__ == "__main__":
    main()
