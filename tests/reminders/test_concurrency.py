"""Two reminder runs at once (threads on both databases, two `jianfei reminders run` processes on
PostgreSQL) send each reminder exactly once, counted on the fake WeChat server's side."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import Session

from app.core.db import utcnow
from app.reminders.models import ReminderOutbox
from app.reminders.service import enqueue_due, run_reminders
from app.wechat.client import WechatClient, reset_wechat
from tests.reminders.helpers import RECYCLING, Resident, outbox_rows, recycling_day

SEND = "/cgi-bin/message/subscribe/send"


@pytest.fixture
def quiet(engine, wechat_state):
    """Earlier tests' reminders sent, so this test's runs only meet its own."""
    client = WechatClient()
    with Session(engine) as s:
        run_reminders(s, client)
    client.close()
    wechat_state.messages.clear()
    wechat_state.calls.clear()
    yield
    reset_wechat()


def _subscribed(client, world, per_household: int = 2) -> list[Resident]:
    residents = [Resident(client, world, i) for i in range(len(world.households)) for _ in range(per_household)]
    for r in residents:
        r.subscribe(client, RECYCLING)
    recycling_day(client, world, 1)
    return residents


def _slow_sends(state, seconds: float = 0.02) -> None:
    # Every send takes a moment, so the two runs overlap for the whole batch.
    state.failures[SEND] = [{"path": SEND, "delay": seconds, "times": 1000}]


def _assert_each_once(client, world, engine, state, residents) -> None:
    mine = {r.openid for r in residents}
    per_user = Counter(m["touser"] for m in state.messages if m["touser"] in mine)
    assert per_user == Counter({openid: 1 for openid in mine})
    rows = outbox_rows(engine, world.community.id)
    assert len(rows) == len(residents) and {r["status"] for r in rows} == {"sent"}
    assert all(r.remaining(client)[RECYCLING] == 0 for r in residents)


@pytest.mark.parametrize("round_", range(2))
def test_two_runs_at_once_send_each_reminder_once(client, world, engine, wechat_state, quiet, round_):
    residents = _subscribed(client, world)
    _slow_sends(wechat_state)
    barrier = threading.Barrier(2)
    reports, errors = [], []

    def run():
        wechat = WechatClient()  # each "instance" has its own client and token cache
        try:
            with Session(engine) as s:
                barrier.wait()
                reports.append(run_reminders(s, wechat, batch=3))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
        finally:
            wechat.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    _assert_each_once(client, world, engine, wechat_state, residents)
    assert sum(r.sent for r in reports) == len(residents)
    assert sum(r.enqueued for r in reports) == len(residents)  # the outbox key let each in once
    # Both instances shared one access token.
    assert wechat_state.calls.get("/cgi-bin/stable_token", 0) <= 1


def test_two_run_commands_at_once_send_each_reminder_once(client, world, engine, wechat_state, quiet):
    residents = _subscribed(client, world)
    _slow_sends(wechat_state)
    env = {**os.environ, "DATABASE_URL": engine.url.render_as_string(hide_password=False)}
    # `python -m app.cli` is the `jianfei` command, run from this checkout (the installed script may
    # point at another worktree).
    root = Path(__file__).resolve().parents[2]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "app.cli", "reminders", "run", "--batch", "2"], cwd=root, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=180)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    _assert_each_once(client, world, engine, wechat_state, residents)


def test_a_send_cut_off_by_a_dead_instance_is_never_resent(client, world, engine, wechat_state, quiet):
    residents = _subscribed(client, world, per_household=1)
    # An instance claimed these reminders and died before recording WeChat's answers.
    with Session(engine) as s:
        enqueue_due(s)
        s.execute(
            update(ReminderOutbox.__table__)
            .where(ReminderOutbox.__table__.c.community_id == world.community.id)
            .values(status="sending", lease_owner="dead-instance", lease_until=utcnow() - timedelta(seconds=1))
        )
        s.commit()
        run_reminders(s, WechatClient())
    assert [m for m in wechat_state.messages if m["touser"] in {r.openid for r in residents}] == []
    assert {r["status"] for r in outbox_rows(engine, world.community.id)} == {"unknown"}
