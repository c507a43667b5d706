"""Reminders through WeChat subscribe messages, against the fake WeChat server over real HTTP.

Residents sign in with WeChat, join their household by phone and report their subscriptions through
the API; the job runs as the CLI runs it. What WeChat received is counted on the fake server's side.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from datetime import time as dtime

import httpx
import pytest
from sqlalchemy import select, text, update
from sqlmodel import Session

from app.core.config import Settings, get_settings
from app.core.db import simulated_clock, utcnow
from app.reminders.service import enqueue_due, run_reminders
from app.wechat.client import WechatClient, reset_wechat
from app.wechat.models import WechatAccessToken
from tests.field import SHANGHAI, local_day
from tests.reminders.helpers import (
    COMPOST,
    RECYCLING,
    Resident,
    compost_ready,
    outbox_rows,
    recycling_day,
    sent,
)

TOKEN = WechatAccessToken.__table__


@pytest.fixture
def wechat(engine, fake_wechat, wechat_state):
    """A fresh client (its own in-process token cache) on the fake server, no token stored yet."""
    _forget_tokens(engine, wechat_state)
    client = WechatClient()
    yield client
    client.close()
    _forget_tokens(engine, wechat_state)
    reset_wechat()


def _run(engine, wechat):
    with Session(engine) as s:
        return run_reminders(s, wechat)


def _forget_tokens(engine, state):
    with Session(engine) as s:
        s.execute(text("DELETE FROM wechat_access_token"))
        s.commit()
    state.tokens.clear()
    state.stable_token = None
    state.calls.clear()


def _drain(engine, wechat, state):
    _run(engine, wechat)
    state.messages.clear()
    state.calls.clear()


def test_subscriptions_count_each_acceptance_once(client, world, wechat_state):
    alice = Resident(client, world, 0)
    assert alice.remaining(client) == {RECYCLING: 0, COMPOST: 0}
    body = {"client_id": "sub-report-0001", "results": {RECYCLING: "accept", COMPOST: "reject"}}
    first = client.post("/api/v1/me/subscriptions", json=body, headers={"Authorization": f"Bearer {alice.token}"})
    assert first.status_code == 200, first.text
    assert {s["template_id"]: s["remaining"] for s in first.json()["items"]} == {RECYCLING: 1, COMPOST: 0}
    again = client.post("/api/v1/me/subscriptions", json=body, headers={"Authorization": f"Bearer {alice.token}"})
    assert again.json() == first.json()  # a resent report counts once
    assert alice.subscribe(client, RECYCLING) == {RECYCLING: 2, COMPOST: 0}
    assert alice.subscribe(client, COMPOST, "ban") == {RECYCLING: 2, COMPOST: 0}
    bad = client.post(
        "/api/v1/me/subscriptions", json={"client_id": "sub-report-0002", "results": {"tmpl-nope": "accept"}},
        headers={"Authorization": f"Bearer {alice.token}", "Accept-Language": "en"},
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "unknown_template"
    # Another resident's subscriptions are their own.
    assert Resident(client, world, 1).remaining(client) == {RECYCLING: 0, COMPOST: 0}


def test_one_message_per_due_reminder_and_a_rerun_sends_nothing(client, world, engine, wechat, wechat_state):
    _drain(engine, wechat, wechat_state)
    alice, bob, carol, dave = (Resident(client, world, i) for i in (0, 1, 2, 3))
    alice.subscribe(client, RECYCLING)
    alice.subscribe(client, RECYCLING)
    alice.subscribe(client, COMPOST)
    bob.subscribe(client, RECYCLING)
    carol.subscribe(client, COMPOST)  # carol fed no bin: no compost reminder
    # dave subscribed to nothing.
    event = recycling_day(client, world, 1)
    recycling_day(client, world, 2, place="南门")  # not tomorrow: not yet
    claims = compost_ready(client, world, [0, 1, 3])

    report = _run(engine, wechat)
    assert report.sent == 3
    mine = {alice.openid, bob.openid, carol.openid, dave.openid}
    got = sorted((m["touser"], m["template_id"]) for m in wechat_state.messages if m["touser"] in mine)
    assert got == sorted([(alice.openid, RECYCLING), (bob.openid, RECYCLING), (alice.openid, COMPOST)])
    recycling_msg = next(m for m in sent(wechat_state, alice.openid) if m["template_id"] == RECYCLING)
    assert recycling_msg["data"]["thing3"]["value"] == "北门广场"
    assert recycling_msg["data"]["time2"]["value"].endswith("09:00~11:00")
    assert recycling_msg["page"] == f"pages/recycling/event?id={event}"
    compost_msg = next(m for m in sent(wechat_state, alice.openid) if m["template_id"] == COMPOST)
    assert compost_msg["page"] == f"pages/compost/claims?id={claims[alice.household_id]}"
    # Each message used one acceptance.
    assert alice.remaining(client) == {RECYCLING: 1, COMPOST: 0}
    assert bob.remaining(client) == {RECYCLING: 0, COMPOST: 0}
    assert carol.remaining(client) == {RECYCLING: 0, COMPOST: 1}

    # Running again (alice could still receive one more recycling message) sends nothing new.
    again = _run(engine, wechat)
    assert again.enqueued == 0 and again.sent == 0
    assert len([m for m in wechat_state.messages if m["touser"] in mine]) == 3
    assert alice.remaining(client) == {RECYCLING: 1, COMPOST: 0}

    # Staff see the outbox of their community.
    r = client.get(f"/api/v1/communities/{world.community.id}/reminders", headers=world.h("committee"))
    assert r.status_code == 200, r.text
    counts = {(c["kind"], c["status"]): c["count"] for c in r.json()["counts"]}
    assert counts == {("recycling_day", "sent"): 2, ("compost_ready", "sent"): 1}
    assert len(r.json()["items"]) == 3 and "openid" not in r.text
    assert client.get(f"/api/v1/communities/{world.community.id}/reminders", headers=world.h("volunteer")).status_code == 403


def test_collected_compost_and_cancelled_days_are_not_reminded(client, world, engine, wechat, wechat_state):
    _drain(engine, wechat, wechat_state)
    alice = Resident(client, world, 0)
    alice.subscribe(client, COMPOST)
    claims = compost_ready(client, world, [0])
    r = client.post(f"/api/v1/compost-claims/{claims[alice.household_id]}/collect", headers=world.h("compost_keeper"))
    assert r.status_code == 200, r.text
    _run(engine, wechat)
    assert sent(wechat_state, alice.openid) == []
    assert alice.remaining(client) == {RECYCLING: 0, COMPOST: 1}


def test_a_recurring_day_reminds_and_a_cancelled_one_is_skipped(client, world, engine, wechat, wechat_state):
    _drain(engine, wechat, wechat_state)
    alice, bob = Resident(client, world, 0), Resident(client, world, 1)
    alice.subscribe(client, RECYCLING)
    tomorrow = local_day() + timedelta(days=1)
    body = {"rrule": "FREQ=WEEKLY", "starts_on": str(tomorrow), "start_time": "09:00:00", "end_time": "11:00:00", "place": "东门"}
    r = client.post(f"/api/v1/communities/{world.community.id}/recycling-schedules", json=body, headers=world.h("committee"))
    assert r.status_code == 201, r.text
    schedule_id = r.json()["id"]
    assert _run(engine, wechat).sent == 1
    assert sent(wechat_state, alice.openid)[0]["data"]["thing3"]["value"] == "东门"
    # Bob's reminder is recorded, then the day is cancelled (因雨取消) before its turn to be sent.
    bob.subscribe(client, RECYCLING)
    with Session(engine) as s:
        assert enqueue_due(s) == 1
    r = client.post(
        f"/api/v1/recycling-schedules/{schedule_id}/exceptions", json={"original_date": str(tomorrow), "action": "cancel", "note": "因雨取消"},
        headers=world.h("committee"),
    )
    assert r.status_code == 201, r.text
    _run(engine, wechat)
    assert sent(wechat_state, bob.openid) == []
    rows = {r["user_id"]: r for r in outbox_rows(engine, world.community.id)}
    assert rows[bob.user_id]["status"] == "skipped"
    assert bob.remaining(client)[RECYCLING] == 1  # nothing sent, nothing used


def test_reminders_wait_for_the_day(client, world, engine, wechat, wechat_state, monkeypatch):
    _drain(engine, wechat, wechat_state)
    monkeypatch.setattr(get_settings(), "reminder_hours", "8-21")
    alice = Resident(client, world, 0)
    alice.subscribe(client, RECYCLING)
    recycling_day(client, world, 1)
    today = local_day()
    with simulated_clock(datetime.combine(today, dtime(2, 30), SHANGHAI)):
        assert _run(engine, wechat).enqueued == 0
    with simulated_clock(datetime.combine(today, dtime(21, 0), SHANGHAI)):
        assert _run(engine, wechat).enqueued == 0
    assert sent(wechat_state, alice.openid) == []
    with simulated_clock(datetime.combine(today, dtime(8, 0), SHANGHAI)):
        assert _run(engine, wechat).sent == 1
    assert len(sent(wechat_state, alice.openid)) == 1


def test_token_is_shared_and_refreshed_when_wechat_expires_it(client, world, engine, wechat, wechat_state):
    _drain(engine, wechat, wechat_state)
    alice, bob = Resident(client, world, 0), Resident(client, world, 1)
    alice.subscribe(client, RECYCLING)
    bob.subscribe(client, RECYCLING)
    recycling_day(client, world, 1)
    _forget_tokens(engine, wechat_state)
    wechat = WechatClient()

    # Alice's reminder: one token fetched and stored for every instance.
    wechat_state.refused.add(bob.openid)  # bob's turn comes later
    _run(engine, wechat)
    assert len(sent(wechat_state, alice.openid)) == 1
    assert wechat_state.calls["/cgi-bin/stable_token"] == 1, wechat_state.calls
    with Session(engine) as s:
        stored = s.execute(text("SELECT token FROM wechat_access_token")).scalar_one()
    assert stored in wechat_state.tokens
    # A second instance (its own client, empty in-process cache) uses the stored token.
    other = WechatClient()
    assert other.access_token() == stored and wechat_state.calls["/cgi-bin/stable_token"] == 1
    other.close()

    # WeChat expires the token: the send gets 42001, the token is renewed once and the send retried.
    wechat_state.refused.clear()
    with Session(engine) as s:
        s.execute(text("UPDATE reminder_outbox SET status = 'pending', errcode = NULL WHERE user_id = :u"), {"u": bob.user_id})
        s.execute(text("UPDATE message_subscription SET remaining = 1 WHERE user_id = :u"), {"u": bob.user_id})
        s.commit()
    httpx.post(f"{wechat.settings.wechat_api_base}/_fake/expire-tokens")
    calls_before = wechat_state.calls["/cgi-bin/message/subscribe/send"]
    _run(engine, wechat)
    assert len(sent(wechat_state, bob.openid)) == 1
    assert wechat_state.calls["/cgi-bin/stable_token"] == 2
    assert wechat_state.calls["/cgi-bin/message/subscribe/send"] == calls_before + 2
    with Session(engine) as s:
        renewed = s.execute(text("SELECT token FROM wechat_access_token")).scalar_one()
    assert renewed != stored


def test_token_is_renewed_before_it_expires(client, engine, wechat, wechat_state):
    _forget_tokens(engine, wechat_state)
    first = wechat.access_token()
    assert wechat.access_token() == first and wechat_state.calls["/cgi-bin/stable_token"] == 1
    # 116 minutes later, four minutes left: inside the five-minute margin, a new instance renews before using it.
    with Session(engine) as s:
        s.execute(
            update(TOKEN).values(expires_at=utcnow() + timedelta(minutes=4), refreshed_at=utcnow() - timedelta(minutes=116))
        )
        s.commit()
    wechat_state.tokens[first] = utcnow().timestamp() + 240
    other = WechatClient()
    second = other.access_token()
    other.close()
    assert wechat_state.calls["/cgi-bin/stable_token"] == 2
    assert second != first and second in wechat_state.tokens
    with Session(engine) as s:
        left = s.execute(select(TOKEN.c.expires_at)).scalar_one()
    assert left - utcnow() > timedelta(hours=1)


def test_transient_failures_are_retried_with_backoff(client, world, engine, wechat, wechat_state):
    _drain(engine, wechat, wechat_state)
    alice = Resident(client, world, 0)
    alice.subscribe(client, RECYCLING)
    recycling_day(client, world, 1)
    path = "/cgi-bin/message/subscribe/send"
    wechat_state.failures[path] = [{"path": path, "errcode": -1, "times": 1}, {"path": path, "errcode": 45009, "times": 1}]
    report = _run(engine, wechat)
    assert report.sent == 1 and len(sent(wechat_state, alice.openid)) == 1
    assert wechat_state.calls[path] == 3
    assert alice.remaining(client)[RECYCLING] == 0


def test_failures_outlasting_the_retries_wait_for_a_later_run(client, world, engine, wechat, wechat_state, clock):
    _drain(engine, wechat, wechat_state)
    alice = Resident(client, world, 0)
    alice.subscribe(client, RECYCLING)
    recycling_day(client, world, 1)
    path = "/cgi-bin/message/subscribe/send"
    wechat_state.failures[path] = [{"path": path, "errcode": 45009, "times": 3}]  # the client tries 3 times
    _run(engine, wechat)
    assert sent(wechat_state, alice.openid) == []
    [row] = [r for r in outbox_rows(engine, world.community.id) if r["user_id"] == alice.user_id]
    assert (row["status"], row["attempts"], row["errcode"]) == ("pending", 1, 45009)
    assert alice.remaining(client)[RECYCLING] == 1  # given back: nothing was delivered
    _run(engine, wechat)  # too early: the pause before the next attempt has not passed
    assert sent(wechat_state, alice.openid) == []
    clock.advance(minutes=2)
    _run(engine, wechat)
    assert len(sent(wechat_state, alice.openid)) == 1
    [row] = [r for r in outbox_rows(engine, world.community.id) if r["user_id"] == alice.user_id]
    assert (row["status"], row["attempts"]) == ("sent", 2)
    assert alice.remaining(client)[RECYCLING] == 0


def test_permanent_failures_are_recorded_and_not_retried(client, world, engine, wechat, wechat_state):
    _drain(engine, wechat, wechat_state)
    alice, bob = Resident(client, world, 0), Resident(client, world, 1)
    bob.subscribe(client, RECYCLING)
    alice.subscribe(client, COMPOST)
    alice.subscribe(client, COMPOST)
    recycling_day(client, world, 1)
    compost_ready(client, world, [0])
    path = "/cgi-bin/message/subscribe/send"
    # Recycling reminders go first: bob's meets bad template data (47003); then alice's subscription
    # turns out to be gone on WeChat's side (43101).
    wechat_state.failures[path] = [{"path": path, "errcode": 47003, "times": 1}]
    wechat_state.refused.add(alice.openid)
    _run(engine, wechat)
    assert wechat_state.calls[path] == 2  # one call each, no retry
    rows = {r["user_id"]: r for r in outbox_rows(engine, world.community.id)}
    assert (rows[bob.user_id]["status"], rows[bob.user_id]["errcode"], rows[bob.user_id]["attempts"]) == ("failed", 47003, 1)
    assert (rows[alice.user_id]["status"], rows[alice.user_id]["errcode"], rows[alice.user_id]["attempts"]) == ("failed", 43101, 1)
    assert bob.remaining(client)[RECYCLING] == 1  # nothing was delivered: his acceptance is still there
    assert alice.remaining(client)[COMPOST] == 0  # WeChat holds nothing for her: our count follows
    _run(engine, wechat)
    assert wechat_state.calls[path] == 2 and wechat_state.messages == []
    r = client.get(f"/api/v1/communities/{world.community.id}/reminders?status=failed", headers=world.h("committee", **{"Accept-Language": "en"}))
    assert {i["errcode"] for i in r.json()["items"]} == {43101, 47003}


def test_server_errors_are_retried_but_a_lost_answer_is_never_resent(client, world, engine, wechat, wechat_state):
    _drain(engine, wechat, wechat_state)
    alice, bob = Resident(client, world, 0), Resident(client, world, 1)
    alice.subscribe(client, RECYCLING)
    alice.subscribe(client, RECYCLING)
    recycling_day(client, world, 1)
    path = "/cgi-bin/message/subscribe/send"
    impatient = WechatClient(Settings(wechat_api_base=wechat.settings.wechat_api_base, wechat_timeout_seconds=1.0))
    try:
        # WeChat takes three seconds to answer alice's send and delivers it; we stopped waiting after one.
        wechat_state.failures[path] = [{"path": path, "delay": 3.0, "times": 1}]
        _run(engine, impatient)
        deadline = time.monotonic() + 10
        while not sent(wechat_state, alice.openid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(sent(wechat_state, alice.openid)) == 1
        # Bob's send meets a 500 first (WeChat's front end refused it: safe to send again).
        bob.subscribe(client, RECYCLING)
        wechat_state.failures[path] = [{"path": path, "http_status": 500, "times": 1}]
        _run(engine, impatient)
    finally:
        impatient.close()
    assert len(sent(wechat_state, alice.openid)) == 1  # not sent a second time
    assert len(sent(wechat_state, bob.openid)) == 1
    assert wechat_state.calls[path] == 3
    rows = {r["user_id"]: r for r in outbox_rows(engine, world.community.id)}
    assert rows[alice.user_id]["status"] == "unknown" and rows[bob.user_id]["status"] == "sent"
    assert alice.remaining(client)[RECYCLING] == 1  # the unit it may have used stays used
