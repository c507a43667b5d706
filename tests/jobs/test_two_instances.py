"""Background jobs are safe to run on several instances at once: two expiry runs racing expire once.

Deployments run the same scheduled job on every app instance (or a cron on two machines by mistake);
the second run must find nothing left to do, whatever the interleaving.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlmodel import Session

from app.core.db import utcnow
from app.ledger import expiry
from tests.ledger.helpers import earn, verify_clean

SH = ZoneInfo("Asia/Shanghai")
LAST_YEAR = datetime(utcnow().year - 1, 5, 1, 12, tzinfo=UTC)


def _year_end_policy(client, world):
    r = client.put(
        f"/api/v1/communities/{world.community.id}/ledger/policy",
        json={"expiry_mode": "year_end", "expiry_month": 1, "expiry_day": 1},
        headers=world.h("committee"),
    )
    assert r.status_code == 200, r.text


def _expired(engine, community_id: int) -> tuple[int, int]:
    with Session(engine) as s:
        return s.execute(
            text("SELECT count(*), coalesce(sum(-p.amount), 0) FROM journal_entry e JOIN posting p ON p.entry_id = e.id "
                 "JOIN ledger_account a ON a.id = p.account_id "
                 "WHERE e.source = 'expiry' AND e.community_id = :c AND a.household_id IS NOT NULL"),
            {"c": community_id},
        ).one()


@pytest.mark.parametrize("round_", range(3))
def test_two_expiry_runs_at_once_expire_once(client, world, engine, round_):
    _year_end_policy(client, world)
    for i, h in enumerate(world.households):
        earn(engine, h, 10 + i, when=LAST_YEAR)
    barrier = threading.Barrier(2)
    results, errors = [], []

    def run():
        try:
            with Session(engine) as s:
                barrier.wait()
                results.append(expiry.run_expiry(s, world.community.id, SH))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    expected = sum(10 + i for i in range(len(world.households)))
    assert sum(points for _, _, points in results) == expected
    assert sum(households for _, households, _ in results) == len(world.households)
    assert _expired(engine, world.community.id) == (len(world.households), expected)
    verify_clean(engine, world.community.id)


def test_two_expire_commands_at_once_expire_once(client, world, engine):
    _year_end_policy(client, world)
    for h in world.households:
        earn(engine, h, 25, when=LAST_YEAR)
    env = {**os.environ, "DATABASE_URL": str(engine.url.render_as_string(hide_password=False))}
    cli = str(Path(sys.executable).parent / "jianfei")
    procs = [
        subprocess.Popen([cli, "ledger", "expire", "--community", str(world.community.id)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert _expired(engine, world.community.id) == (len(world.households), 25 * len(world.households))
    verify_clean(engine, world.community.id)
