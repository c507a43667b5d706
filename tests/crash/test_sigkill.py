"""The server killed with SIGKILL in the middle of a steady load of writes loses nothing it acknowledged.

A real server process (the container's entry script: migrate, then granian with two workers) on a fresh
PostgreSQL database; seven staff clients post points (credits and small debits) with their own
idempotency keys while a resident reserves rewards (points held from the passbook); the whole process
group is SIGKILLed mid-load and started again. Then:
- every request answered 2xx is in the database (points posted, rewards reserved);
- nothing is half-written: each entry has its postings and sums to zero, `jianfei ledger verify` is clean;
- the clients retry every request (answered or not) with the same key: nothing is doubled, and the
  balances equal the sum of each distinct act exactly once.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlmodel import Session

from tests.conftest import drop_pg_database, fresh_pg_database
from tests.support import World

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Act:
    household_id: int
    points: int
    key: str
    status: int | None = None  # None: no answer (the server died first)
    reserve_item: int | None = None  # a redemption (reserving a reward) instead of a points adjustment


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(url: str, port: int, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "SEED_DEMO": "false",
        "LOG_LEVEL": "WARNING",
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.Popen(
        ["sh", str(ROOT / "scripts" / "docker-entrypoint.sh")],
        cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-2000:]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
    _kill(proc)
    raise AssertionError("server did not start:\n" + log.read_text()[-2000:])


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(10)


@pytest.fixture
def crash_db(fake_wechat):
    from app.core.db import make_engine
    from app.core.migrate import upgrade

    url = fresh_pg_database("crash")
    upgrade(url)
    engine = make_engine(url)
    yield url, engine
    engine.dispose()
    drop_pg_database(url)


def _send(client: httpx.Client, base: str, act: Act, token: str) -> int | None:
    if act.reserve_item is not None:
        url = f"{base}/api/v1/households/{act.household_id}/redemptions"
        body = {"item_id": act.reserve_item, "quantity": 1, "idempotency_key": act.key}
    else:
        url = f"{base}/api/v1/households/{act.household_id}/adjustments"
        body = {"points": act.points, "reason": "崩溃测试", "idempotency_key": act.key}
    try:
        return client.post(url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=5).status_code
    except httpx.HTTPError:
        return None


def test_sigkill_mid_load_loses_and_doubles_nothing(crash_db, tmp_path):
    url, engine = crash_db
    world = World.build(None, engine, households_per_building=10)
    token = world.tokens["committee"]
    households = [h.id for h in world.households]
    port = _port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    server = _start(url, port, log)
    resident_home = world.households[0].id
    with httpx.Client() as client:
        committee = {"Authorization": f"Bearer {token}"}
        r = client.post(f"{base}/api/v1/communities/{world.community.id}/rewards", headers=committee,
                        json={"name": "环保袋", "price_points": 1, "stock": 1_000_000})
        assert r.status_code == 201, r.text
        item = r.json()["id"]
        funding = Act(resident_home, 100_000, "crash-funding")
        funding.status = _send(client, base, funding, token)
        assert funding.status == 201

    acts: list[Act] = [funding]
    lock = threading.Lock()
    stop = threading.Event()

    def client_loop(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client() as client:
            while not stop.is_set():
                # Mostly credits; one in four a debit of 1 point (like a redemption), which may be refused.
                points = rng.choice([5, 10, 20, -1])
                act = Act(rng.choice(households), points, f"crash-{seed}-{uuid.uuid4().hex}")
                act.status = _send(client, base, act, token)
                with lock:
                    acts.append(act)

    def resident_loop() -> None:
        """The resident reserves rewards (points held from the passbook) while the staff post points."""
        with httpx.Client() as client:
            n = 0
            while not stop.is_set():
                n += 1
                act = Act(resident_home, -1, f"crash-reserve-{n}-{uuid.uuid4().hex[:12]}", reserve_item=item)
                act.status = _send(client, base, act, world.tokens["resident"])
                with lock:
                    acts.append(act)

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(7)]
    threads.append(threading.Thread(target=resident_loop))
    for t in threads:
        t.start()
    # Kill once a steady stream has been acknowledged, a reservation among it (on a busy machine the
    # resident's first reservations may come after the staff's hundredth credit).
    deadline = time.monotonic() + 30

    def acknowledged() -> bool:
        with lock:
            done = [a for a in acts if a.status == 201]
        return len(done) >= 100 and any(a.reserve_item is not None for a in done)

    while time.monotonic() < deadline and not acknowledged():
        time.sleep(0.05)
    _kill(server)
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join(15)

    answered = [a for a in acts if a.status is not None and 200 <= a.status < 300]
    assert len(answered) >= 100, f"load did not get going: {len(answered)} acknowledged"
    assert all(a.status in (201, 409, None) for a in acts), {a.status for a in acts}

    # Restart on the same database (the entry script migrates again: a no-op).
    server = _start(url, port, log)
    try:
        with Session(engine) as s:
            stored = {
                k for (k,) in s.execute(text("SELECT idempotency_key FROM journal_entry WHERE source = 'adjustment'"))
            }
            reserved = {k for (k,) in s.execute(text("SELECT idempotency_key FROM redemption"))}
        keys = {a.key: f"adjustment:{a.household_id}:{a.key}" for a in acts if a.reserve_item is None}
        lost = [a.key for a in answered if a.reserve_item is None and keys[a.key] not in stored]
        lost += [a.key for a in answered if a.reserve_item is not None and a.key not in reserved]
        assert not lost, f"{len(lost)} acknowledged writes are missing"
        assert any(a.reserve_item is not None for a in answered), "no redemption was acknowledged"

        _assert_whole(engine)

        # Every client retries everything it sent (unanswered ones above all) with the same key.
        with httpx.Client() as client:
            for a in acts:
                status = _send(client, base, a, world.tokens["resident"] if a.reserve_item else token)
                if a.status == 201:
                    assert status == 201, (a, status)  # answered as a replay of the same entry
                else:
                    assert status in (201, 409), (a, status)
                a.status = status
    finally:
        _kill(server)

    with Session(engine) as s:
        per_key = dict(
            s.execute(text("SELECT idempotency_key, count(*) FROM journal_entry WHERE source = 'adjustment' GROUP BY 1")).all()
        )
        assert max(per_key.values()) == 1
        assert set(per_key) == {keys[a.key] for a in acts if a.status == 201 and a.reserve_item is None}
        per_reservation = dict(s.execute(text("SELECT idempotency_key, count(*) FROM redemption GROUP BY 1")).all())
        assert set(per_reservation) == {a.key for a in acts if a.status == 201 and a.reserve_item is not None}
        assert max(per_reservation.values()) == 1
        expected: dict[int, int] = {}
        for a in acts:
            if a.status == 201:
                expected[a.household_id] = expected.get(a.household_id, 0) + a.points
        balances = dict(s.execute(text("SELECT household_id, balance FROM ledger_account WHERE household_id IS NOT NULL")).all())
        assert {h: b for h, b in balances.items() if b or h in expected} == {h: p for h, p in expected.items() if p or h in balances}
        audits = s.execute(text("SELECT count(*) FROM audit_log WHERE action = 'ledger.adjust'")).scalar_one()
        # Reservations hold points: the household's balance is what it earned minus what it holds.
        assert audits == len(per_key), "one audit row per entry, none for replays"
    _assert_whole(engine)
    verify = subprocess.run(
        [str(Path(sys.executable).parent / "jianfei"), "ledger", "verify"],
        env={**os.environ, "DATABASE_URL": url}, capture_output=True, text=True,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def _assert_whole(engine) -> None:
    """No entry without its postings, none that does not sum to zero, no posting without its entry."""
    with Session(engine) as s:
        broken = s.execute(
            text(
                "SELECT e.id, count(p.id), coalesce(sum(p.amount), 0) FROM journal_entry e "
                "LEFT JOIN posting p ON p.entry_id = e.id GROUP BY e.id HAVING count(p.id) < 2 OR sum(p.amount) <> 0"
            )
        ).all()
        assert not broken, broken[:5]
        orphans = s.execute(
            text("SELECT count(*) FROM posting p LEFT JOIN journal_entry e ON e.id = p.entry_id WHERE e.id IS NULL")
        ).scalar_one()
        assert orphans == 0
