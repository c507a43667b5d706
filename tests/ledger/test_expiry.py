"""Expiry policies: never, year-end (年底清零), rolling N months; FIFO spending; idempotent runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session

from app.core.db import utcnow
from app.ledger import expiry
from app.ledger import service as ledger
from tests.ledger.helpers import earn, spend, verify_clean

SH = ZoneInfo("Asia/Shanghai")


def _at(y, m, d, h=12):
    return datetime(y, m, d, h, tzinfo=SH).astimezone(UTC)


def _set_policy(client, world, **policy):
    r = client.put(f"/api/v1/communities/{world.community.id}/ledger/policy", json=policy, headers=world.h("committee"))
    assert r.status_code == 200, r.text


def _run(engine, world, now):
    with Session(engine) as s:
        return expiry.run_expiry(s, world.community.id, SH, now)


def _balance(engine, h):
    with Session(engine) as s:
        return ledger.balance_of(s, h.id)


def test_year_end_expires_what_is_left_of_last_years_points(client, world, engine):
    _set_policy(client, world, expiry_mode="year_end", expiry_month=3, expiry_day=31)
    h = world.households[0]
    earn(engine, h, 100, when=_at(2025, 5, 1))
    earn(engine, h, 50, when=_at(2025, 12, 31, 23))  # still 2025 in Shanghai
    earn(engine, h, 40, when=_at(2026, 1, 1, 1))  # 2026: not this round
    spend(engine, h, 120)  # oldest first: takes 100 from May and 20 from December
    # Before the date nothing happens.
    assert _run(engine, world, _at(2026, 3, 31, 20))[1:] == (0, 0)
    cutoff, households, points = _run(engine, world, _at(2026, 4, 1, 9))
    assert (households, points) == (1, 30)
    assert cutoff == _at(2026, 1, 1, 0)
    assert _balance(engine, h) == 40
    # Running again, on the same day or later in the year, changes nothing.
    assert _run(engine, world, _at(2026, 4, 1, 10))[1:] == (0, 0)
    assert _run(engine, world, _at(2026, 11, 1))[1:] == (0, 0)
    verify_clean(engine, world.community.id)


def test_rolling_expiry_and_never(client, world, engine):
    h = world.households[1]
    earn(engine, h, 10, when=_at(2025, 1, 10))
    earn(engine, h, 20, when=_at(2025, 8, 10))
    assert _run(engine, world, _at(2026, 6, 1))[1:] == (0, 0)  # policy "never" by default
    _set_policy(client, world, expiry_mode="rolling", expiry_months=12)
    assert _run(engine, world, _at(2026, 6, 1))[1:] == (1, 10)
    assert _run(engine, world, _at(2026, 6, 1, 18))[1:] == (0, 0)
    assert _run(engine, world, _at(2026, 8, 11))[1:] == (1, 20)
    assert _balance(engine, h) == 0
    verify_clean(engine, world.community.id)


def test_reversed_points_do_not_expire_and_expiry_is_shown_ahead(client, world, engine):
    _set_policy(client, world, expiry_mode="rolling", expiry_months=12)
    h = world.households[2]
    now = utcnow()
    soon = now - timedelta(days=365 - 10)  # expires in about 10 days
    mistake = earn(engine, h, 30, when=soon)
    earn(engine, h, 12, when=soon)
    earn(engine, h, 5, when=now)
    with Session(engine) as s:
        ledger.reverse(s, mistake, reason="录错", actor_user_id=None, idempotency_key=f"rev:{mistake}")
        s.commit()
    pb = client.get(f"/api/v1/households/{h.id}/passbook", headers=world.h("committee")).json()
    assert pb["balance"] == 17 and pb["expiring_points"] == 12 and pb["expiring_on"] is not None
    far = client.get(f"/api/v1/households/{world.households[3].id}/passbook", headers=world.h("committee")).json()
    assert far["expiring_points"] == 0


def test_expiry_run_endpoint_is_idempotent_and_audited(client, world, engine):
    _set_policy(client, world, expiry_mode="rolling", expiry_months=1)
    h = world.households[4]
    earn(engine, h, 9, when=utcnow() - timedelta(days=70))
    url = f"/api/v1/communities/{world.community.id}/ledger/expiry-runs"
    first = client.post(url, headers=world.h("committee")).json()
    second = client.post(url, headers=world.h("committee")).json()
    assert (first["households_expired"], first["points_expired"]) == (1, 9)
    assert (second["households_expired"], second["points_expired"]) == (0, 0)
    assert client.post(url, headers=world.h("volunteer")).status_code == 403
    lines = client.get(f"/api/v1/households/{h.id}/statement", headers=world.h("committee")).json()["items"]
    assert lines[0]["source"] == "expiry" and lines[0]["points_out"] == 9 and lines[0]["balance_after"] == 0
    report = client.get(f"/api/v1/communities/{world.community.id}/ledger/verify", headers=world.h("committee")).json()
    assert report["balance_mismatches"] == [] and report["unbalanced_entries"] == [] and report["chain_breaks"] == []


def test_rolling_expiry_date_is_the_day_the_run_takes_the_points(client, world, engine, clock):
    """80 points earned 2026-06-14 with 6-month rolling expiry: the passbook and the printable statement
    say 2026-12-15, and the run of 2026-12-15 (not before) takes them."""
    _set_policy(client, world, expiry_mode="rolling", expiry_months=6)
    h = world.households[5]
    clock.set(_at(2026, 6, 14, 10))
    r = client.post(f"/api/v1/households/{h.id}/adjustments", headers=world.h("committee"),
                    json={"points": 80, "reason": "活动奖励", "idempotency_key": "rolling-80-points"})
    assert r.status_code == 201, r.text
    clock.set(_at(2026, 7, 20, 10))  # taken on 2027-01-21: beyond the 30 days
    r = client.post(f"/api/v1/households/{h.id}/adjustments", headers=world.h("committee"),
                    json={"points": 5, "reason": "活动奖励", "idempotency_key": "rolling-5-points"})
    assert r.status_code == 201, r.text
    url = f"/api/v1/communities/{world.community.id}/ledger/expiry-runs"

    clock.set(_at(2026, 12, 4, 10))  # 30 days ahead reaches 2027-01-03: only the June points fall in it
    pb = client.get(f"/api/v1/households/{h.id}/passbook", headers=world.h("committee")).json()
    assert pb["expiring_points"] == 80
    assert datetime.fromisoformat(pb["expiring_on"]).astimezone(SH).date().isoformat() == "2026-12-15"
    page = client.get(f"/api/v1/households/{h.id}/statement?format=html", headers=world.h("committee"))
    assert page.status_code == 200 and "80 积分将于 2026-12-15 前过期" in page.text, page.text

    clock.set(_at(2026, 12, 14, 23))  # the run of the day before takes nothing
    assert client.post(url, headers=world.h("committee")).json()["points_expired"] == 0
    clock.set(_at(2026, 12, 15, 0) + timedelta(minutes=5))
    assert client.post(url, headers=world.h("committee")).json()["points_expired"] == 80
    lines = client.get(f"/api/v1/households/{h.id}/statement", headers=world.h("committee")).json()["items"]
    assert (lines[0]["source"], lines[0]["points_out"], lines[0]["date"]) == ("expiry", 80, "2026-12-15")

    # Year-end mode keeps its date: everything earned in 2026 is taken after 31 March 2027.
    _set_policy(client, world, expiry_mode="year_end", expiry_month=3, expiry_day=31)
    clock.set(_at(2027, 3, 10, 10))
    pb = client.get(f"/api/v1/households/{h.id}/passbook", headers=world.h("committee")).json()
    assert pb["expiring_points"] == 5
    assert datetime.fromisoformat(pb["expiring_on"]).astimezone(SH) == datetime(2027, 4, 1, tzinfo=SH)
