"""Rates and the red and black list (红黑榜) from check-in records whose rates are worked out by hand here.

Layout: 一期 (the world's): 1号楼 6 households, 2号楼 6; 二期: 3号楼 5, 4号楼 4, 5号楼 8.
Period: the last two local days. Check-ins (accepted, not corrected):
  1号楼: all 6 correct in the morning; 2 of them incorrect in the evening → 8 checks, 6 correct (75 %), 6/6 take part.
  2号楼: 5 households correct morning and evening → 10 checks, 10 correct (100 %), 5/6 take part (83.33 %).
  3号楼: all 5 correct once → 5/5 (100 %), 5/5 take part; plus a duplicate, a rejected and a reversed scan (none count).
  4号楼: all 4 correct once: fewer than 5 households, never shown.
  5号楼: 3 of 8 correct once: 37.5 % participation shown in rates; its accuracy (3 households) is not.
"""

from __future__ import annotations

import pytest

from app.places.models import Household
from tests.clock import NOON
from tests.reports.records import add_buildings, at, codes, scan, setup_field, upload
from tests.support import World


@pytest.fixture
def town(client, engine, clock):
    clock.set_local(NOON)  # the records' "yesterday" is the period's, however long the test takes
    world = World.build(client, engine, households_per_building=6)
    field = setup_field(client, world)
    st = field["station_id"]
    b1, b2 = world.households[:6], world.households[6:]
    more = add_buildings(world, "二期", {"3号楼": 5, "4号楼": 4, "5号楼": 8})
    c1, c2 = codes(world, b1), codes(world, b2)
    c3, c4, c5 = (codes(world, more[n]) for n in ("3号楼", "4号楼", "5号楼"))
    scans = [scan(st, c, at(1, 7, 30)) for c in c1]
    scans += [scan(st, c, at(1, 19), "incorrect") for c in c1[4:]]
    scans += [scan(st, c, at(2, 7, 15)) for c in c2[:5]] + [scan(st, c, at(2, 18, 30)) for c in c2[:5]]
    scans += [scan(st, c, at(1, 8)) for c in c3]
    scans += [scan(st, c3[0], at(1, 8, 30))]  # same window again: a duplicate
    scans += [scan(st, c3[1], at(1, 12), "incorrect")]  # outside any window: rejected
    scans += [scan(st, c, at(2, 8)) for c in c4] + [scan(st, c, at(2, 8)) for c in c5[:3]]
    results = upload(client, world, scans)
    assert [r["status"] for r in results].count("accepted") == 6 + 2 + 10 + 5 + 4 + 3
    wrong = upload(client, world, [scan(st, c3[2], at(1, 19))])[0]  # the wrong household scanned: corrected
    r = client.post(f"/api/v1/checkins/{wrong['checkin_id']}/reverse", json={"reason": "扫错了"}, headers=world.h("committee"))
    assert r.status_code == 200, r.text
    world.more = more
    return world


def _period() -> dict:
    from tests.field import local_day

    return {"start": local_day(2).isoformat(), "end": local_day(1).isoformat()}


def _url(world, what: str) -> str:
    return f"/api/v1/communities/{world.community.id}/reports/{what}"


def test_rates_by_building_and_compound(client, town):
    r = client.get(_url(town, "rates"), params={**_period(), "by": "building"}, headers=town.h("committee"))
    assert r.status_code == 200, r.text
    body = r.json()
    rows = {g["name"]: g for g in body["groups"]}
    assert set(rows) == {"一期 1号楼", "一期 2号楼", "二期 3号楼", "二期 5号楼"} and body["hidden"] == 1  # 4号楼
    assert {k: rows["一期 1号楼"][k] for k in ("households", "participating", "checks", "correct", "participation_rate", "accuracy")} == {
        "households": 6, "participating": 6, "checks": 8, "correct": 6, "participation_rate": 1.0, "accuracy": 0.75}
    assert (rows["一期 2号楼"]["participation_rate"], rows["一期 2号楼"]["accuracy"]) == (round(5 / 6, 4), 1.0)
    assert (rows["二期 3号楼"]["checks"], rows["二期 3号楼"]["correct"], rows["二期 3号楼"]["participating"]) == (5, 5, 5)
    assert (rows["二期 5号楼"]["participation_rate"], rows["二期 5号楼"]["accuracy"]) == (0.375, None)
    assert (rows["二期 5号楼"]["checks"], rows["二期 5号楼"]["correct"]) == (None, None)  # would give the accuracy away
    total = body["total"]
    assert (total["households"], total["participating"], total["checks"], total["correct"]) == (29, 23, 30, 28)
    assert total["participation_rate"] == round(23 / 29, 4) and total["accuracy"] == round(28 / 30, 4)
    for row in body["groups"]:
        assert set(row) == {"level", "id", "name", "households", "participating", "participation_rate", "checks", "correct", "accuracy"}

    by_compound = client.get(_url(town, "rates"), params={**_period(), "by": "compound"}, headers=town.h("street_viewer")).json()
    compounds = {g["name"]: g for g in by_compound["groups"]}
    assert (compounds["一期"]["households"], compounds["一期"]["participating"], compounds["一期"]["checks"], compounds["一期"]["correct"]) == (12, 11, 18, 16)
    assert (compounds["二期"]["households"], compounds["二期"]["participating"], compounds["二期"]["accuracy"]) == (17, 12, 1.0)
    assert by_compound["hidden"] == 0


def test_moved_out_households_leave_both_sides_of_the_rate(client, town, engine):
    from sqlmodel import Session

    with Session(engine) as s:
        h = s.get(Household, town.households[0].id)
        h.status = "moved_out"
        s.add(h)
        s.commit()
    row = {g["name"]: g for g in client.get(_url(town, "rates"), params={**_period(), "by": "building"},
                                            headers=town.h("committee")).json()["groups"]}["一期 1号楼"]
    assert (row["households"], row["participating"], row["checks"], row["correct"]) == (5, 5, 7, 5)


def test_red_and_black_list_follows_the_thresholds_and_the_five_household_rule(client, town):
    url, params = _url(town, "red-black-list"), {**_period(), "by": "building"}
    settings = _url(town, "ranking-settings")
    assert client.get(settings, headers=town.h("committee")).json()["configured"] is False

    r = client.put(settings, json={"accuracy_pct": 75, "participation_pct": 90}, headers=town.h("committee"))
    assert r.status_code == 200 and r.json()["configured"] is True
    body = client.get(url, params=params, headers=town.h("committee")).json()
    names = lambda side: [g["name"] for g in body[side]]  # noqa: E731
    # 1号楼: 75 % exactly meets 75 %, 100 % participation → red. 2号楼: 83.33 % participation < 90 % → black.
    assert names("red") == ["二期 3号楼", "一期 1号楼"] and names("black") == ["一期 2号楼"]
    assert [g["rank"] for g in body["red"]] == [1, 2]
    assert body["hidden"] == 2  # 4号楼 (4 households) and 5号楼 (3 participating)
    assert body["thresholds"]["accuracy_pct"] == 75

    client.put(settings, json={"accuracy_pct": 76, "participation_pct": 83}, headers=town.h("org_admin"))
    body = client.get(url, params=params, headers=town.h("street_viewer")).json()
    # 75 % < 76 % → 1号楼 black; 83.33 % ≥ 83 % → 2号楼 red (ranked below 3号楼 on participation).
    assert names("red") == ["二期 3号楼", "一期 2号楼"] and names("black") == ["一期 1号楼"]
    for g in body["red"] + body["black"]:  # aggregates only: never a household
        assert set(g) == {"level", "id", "name", "households", "participating", "participation_rate", "accuracy", "rank"}
        assert g["level"] == "building" and g["participating"] >= 5
    by_compound = client.get(url, params={**_period(), "by": "compound"}, headers=town.h("committee")).json()
    # 一期: 11/12 take part (91.7 %), 16/18 correct (88.9 %) → red; 二期: 12/17 take part (70.6 % < 83 %) → black.
    assert [g["name"] for g in by_compound["red"]] == ["一期"] and [g["name"] for g in by_compound["black"]] == ["二期"]
    assert by_compound["hidden"] == 0


def test_settings_are_for_managers_and_audited(client, town):
    from sqlmodel import Session, select

    from app.audit.models import AuditLog

    settings = _url(town, "ranking-settings")
    body = {"accuracy_pct": 95, "participation_pct": 70}
    assert client.put(settings, json=body, headers=town.h("street_viewer")).status_code == 403
    assert client.put(settings, json=body, headers=town.h("volunteer")).status_code == 403
    bad = client.put(settings, json={"accuracy_pct": 101, "participation_pct": 70}, headers=town.h("committee"))
    assert bad.status_code == 422
    assert client.put(settings, json=body, headers=town.h("committee")).status_code == 200
    assert client.put(settings, json=body, headers=town.h("committee")).status_code == 200  # same values: no change
    with Session(town.engine) as s:
        rows = s.exec(select(AuditLog).where(AuditLog.action == "reports.ranking_settings",
                                             AuditLog.community_id == town.community.id)).all()
    assert len(rows) == 1 and rows[0].detail["after"] == body
    community = client.get(_url(town, "red-black-list"), params={"by": "community"}, headers=town.h("committee"),)
    assert community.status_code == 400
    en = client.get(_url(town, "red-black-list"), params={"by": "community"}, headers=town.h("committee", **{"Accept-Language": "en"}))
    assert en.json()["error"]["message"] == "The list ranks compounds or buildings"


# --- retention and relapse, on past months replayed through the check-in service ---------------

def _past(day: str, hour: int, minute: int = 0):
    from datetime import date, datetime, time

    from tests.field import SHANGHAI

    return datetime.combine(date.fromisoformat(day), time(hour, minute), SHANGHAI)


@pytest.fixture
def history(client, engine):
    """1号楼 (6) and 2号楼 (6). A 10-day campaign 2026-09-01..10, then the 10 days after it.
    September: 1号楼's 6 households, each correct once during the campaign (local 07:30; 1 September
    07:30 in Shanghai is 31 August 23:30 UTC: it is local days that count). After it, 5 of them:
    4 correct, 1 incorrect. October: 4 of 1号楼's (0–3) and 5 of 2号楼's."""
    from tests.reports.records import replay

    world = World.build(client, engine, households_per_building=6)
    st = setup_field(client, world)["station_id"]
    c1, c2 = codes(world, world.households[:6]), codes(world, world.households[6:])
    scans = [scan(st, c, _past(f"2026-09-0{1 + i}", 7, 30)) for i, c in enumerate(c1)]
    scans += [scan(st, c, _past("2026-09-12", 8)) for c in c1[:4]] + [scan(st, c1[4], _past("2026-09-20", 20), "incorrect")]
    scans += [scan(st, c1[5], _past("2026-08-31", 20, 59))]  # before the campaign and in August: counts nowhere here
    scans += [scan(st, c, _past("2026-10-05", 7)) for c in c1[:4]] + [scan(st, c, _past("2026-10-31", 20, 30)) for c in c2[:5]]
    replay(world, st, scans)
    return world


def test_month_on_month_retention(client, history):
    r = client.get(_url(history, "retention"), params={"month": "2026-10", "by": "building"}, headers=history.h("committee"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["last_month"] == "2026-09"
    total = body["total"]
    # Active in September: 1号楼's 6; in October 4 of them again + 5 new in 2号楼.
    assert (total["active_last_month"], total["active_this_month"], total["retained"]) == (6, 9, 4)
    assert total["retention_rate"] == round(4 / 6, 4)
    rows = {g["name"]: g for g in body["groups"]}
    assert (rows["一期 1号楼"]["retained"], rows["一期 1号楼"]["retention_rate"]) == (4, round(4 / 6, 4))
    assert (rows["一期 2号楼"]["active_last_month"], rows["一期 2号楼"]["retention_rate"]) == (0, None)
    sept = client.get(_url(history, "retention"), params={"month": "2026-09"}, headers=history.h("committee")).json()
    # August: only 1号楼's sixth household (20:59 on 31 August, local) and it came back in September.
    assert (sept["total"]["active_last_month"], sept["total"]["retained"], sept["total"]["retention_rate"]) == (1, None, None)


def test_relapse_after_a_campaign_by_dates_and_by_challenge(client, history):
    params = {"start": "2026-09-01", "end": "2026-09-10", "by": "building"}
    r = client.get(_url(history, "relapse"), params=params, headers=history.h("org_admin"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["after_start"], body["after_end"], body["after_complete"]) == ("2026-09-11", "2026-09-20", True)
    b1 = {g["name"]: g for g in body["groups"]}["一期 1号楼"]
    assert (b1["during"]["participation_rate"], b1["during"]["accuracy"]) == (1.0, 1.0)
    assert (b1["after"]["participating"], b1["after"]["checks"], b1["after"]["correct"]) == (5, 5, 4)
    assert (b1["after"]["participation_rate"], b1["after"]["accuracy"]) == (round(5 / 6, 4), 0.8)
    assert (b1["participation_drop"], b1["accuracy_drop"]) == (round(1 - round(5 / 6, 4), 4), 0.2)
    total = body["total"]
    assert (total["during"]["participation_rate"], total["after"]["participation_rate"]) == (0.5, round(5 / 12, 4))
    assert total["participation_drop"] == round(0.5 - round(5 / 12, 4), 4)

    challenge = client.post(f"/api/v1/communities/{history.community.id}/challenges", headers=history.h("committee"),
                            json={"title": "十天分类打卡", "days_required": 10, "starts_on": "2026-09-01", "ends_on": "2026-09-10"})
    assert challenge.status_code == 201, challenge.text
    by_challenge = client.get(_url(history, "relapse"), params={"challenge_id": challenge.json()["id"], "by": "building"},
                              headers=history.h("committee")).json()
    assert by_challenge["campaign"] == "十天分类打卡" and by_challenge["groups"] == body["groups"]

    bad = client.get(_url(history, "relapse"), params={"start": "2026-09-10", "end": "2026-09-01"}, headers=history.h("committee"))
    assert bad.status_code == 400 and bad.json()["error"]["message"] == "结束日期早于开始日期"
    missing = client.get(_url(history, "relapse"), headers=history.h("committee", **{"Accept-Language": "en"}))
    assert missing.status_code == 400 and "start and end" in missing.json()["error"]["message"]


def test_rates_are_for_report_readers(client, world, other_world):
    for what in ("rates", "retention", "red-black-list", "ranking-settings"):
        url = _url(world, what)
        assert client.get(url, headers=world.h("committee")).status_code == 200, what
        assert client.get(url, headers=world.h("volunteer")).status_code == 403, what
        assert client.get(url, headers=world.h("resident")).status_code == 403, what
        assert client.get(url, headers=other_world.h("committee")).status_code == 403, what
