"""Bin-side check-ins through the API: windows, duplicates, rejections, replays, points."""

from __future__ import annotations

from datetime import timedelta

from app.core.db import utcnow
from app.core.security import sign_code
from tests.clock import NOON
from tests.field import (
    SHANGHAI,
    balance,
    cid,
    forged,
    make_member,
    payload,
    payloads,
    scan,
    setup_field,
    yesterday_at,
)


def _post(client, world, body, role="volunteer", **headers):
    return client.post(f"/api/v1/communities/{world.community.id}/checkins", json=body, headers=world.h(role, **headers))


def test_correct_scan_is_credited_once_per_window(client, world):
    f = setup_field(client, world)
    code = payload(world, 1)
    r = _post(client, world, scan(f["station_id"], code, yesterday_at(7, 30)))
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["status"] == "accepted" and first["points"] == 10
    assert first["household_id"] == world.households[1].id

    again = _post(client, world, scan(f["station_id"], code, yesterday_at(8, 45)))
    assert again.status_code == 200 and again.json()["status"] == "duplicate" and again.json()["points"] == 0

    evening = _post(client, world, scan(f["station_id"], code, yesterday_at(18, 5)))
    assert evening.status_code == 201 and evening.json()["status"] == "accepted"
    assert balance(client, world, 1) == 20

    listed = client.get(
        f"/api/v1/communities/{world.community.id}/checkins", params={"household_id": world.households[1].id}, headers=world.h("committee")
    ).json()["items"]
    assert [c["status"] for c in listed] == ["accepted", "duplicate", "accepted"]


def test_resending_a_scan_changes_nothing(client, world):
    f = setup_field(client, world)
    body = scan(f["station_id"], payload(world, 2), yesterday_at(7, 10))
    first = _post(client, world, body)
    assert first.status_code == 201
    replay = _post(client, world, body)
    assert replay.status_code == 200
    assert replay.json() | {"replayed": False} == first.json()
    assert replay.json()["replayed"] is True
    assert balance(client, world, 2) == 10


def test_incorrect_sorting_earns_nothing_but_counts_in_accuracy(client, world, clock):
    clock.set_local(NOON)  # the scans' "yesterday" is the day whose stats are read
    f = setup_field(client, world)
    bad = scan(f["station_id"], payload(world, 3), yesterday_at(7, 10), result="incorrect")
    r = _post(client, world, bad)
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
    r = _post(client, world, bad | {"reasons": ["bag_not_removed", "mixed"]})
    assert r.status_code == 201 and r.json()["points"] == 0
    ok = _post(client, world, scan(f["station_id"], payload(world, 4), yesterday_at(7, 20)))
    assert ok.status_code == 201
    day = yesterday_at(0).date().isoformat()
    stats = client.get(
        f"/api/v1/communities/{world.community.id}/checkins/stats", params={"start": day, "end": day}, headers=world.h("committee")
    ).json()
    assert stats["checks"] == 2 and stats["correct"] == 1 and stats["accuracy"] == 0.5
    assert stats["participating_households"] == 2
    assert stats["registered_households"] == len(world.households)
    assert balance(client, world, 3) == 0


def test_rejections_are_clear_and_store_no_points(client, world, other_world):
    f = setup_field(client, world)
    sid = f["station_id"]
    code = payload(world, 1)
    cases = [
        (scan(sid, forged(code), yesterday_at(7, 30)), 400, "forged_code"),
        (scan(sid, f"JF1.ZZZZZZZZ.{sign_code('ZZZZZZZZ')}", yesterday_at(7, 30)), 404, "unknown_code"),
        (scan(sid, code, yesterday_at(10, 0)), 422, "outside_window"),
        (scan(sid, code, utcnow() + timedelta(hours=1)), 422, "in_future"),
        (scan(sid, code, yesterday_at(7, 30) - timedelta(days=3)), 422, "too_old"),
        (scan(sid, payload(other_world, 0), yesterday_at(7, 30)), 403, "other_community"),
        (scan(sid + 100000, code, yesterday_at(7, 30)), 404, "unknown_station"),
    ]
    for body, status, code_name in cases:
        r = _post(client, world, body)
        assert r.status_code == status, (code_name, r.text)
        assert r.json()["error"]["code"] == code_name
        assert r.json()["error"]["message"]  # Chinese by default
    en = _post(client, world, scan(sid, code, yesterday_at(10, 0)), **{"Accept-Language": "en"})
    assert en.json()["error"]["message"] == "Outside every drop-off window"
    assert balance(client, world, 1) == 0
    # The rejected scans were recorded: a genuine one afterwards is still credited.
    assert _post(client, world, scan(sid, code, yesterday_at(7, 30))).status_code == 201


def test_a_volunteer_cannot_credit_their_own_household(client, world):
    f = setup_field(client, world)
    headers = make_member(world, "volunteer", 5)
    body = scan(f["station_id"], payload(world, 5), yesterday_at(7, 30))
    r = client.post(f"/api/v1/communities/{world.community.id}/checkins", json=body, headers=headers)
    assert r.status_code == 403 and r.json()["error"]["code"] == "own_household"
    # Another volunteer may.
    r = _post(client, world, body | {"client_id": cid()}, role="supervisor")
    assert r.status_code == 201


def test_residents_and_foreign_staff_cannot_scan(client, world, other_world):
    f = setup_field(client, world)
    body = scan(f["station_id"], payload(world, 1), yesterday_at(7, 30))
    assert _post(client, world, body, role="resident").status_code == 403
    assert _post(client, world, body, role="street_viewer").status_code == 403
    r = client.post(f"/api/v1/communities/{world.community.id}/checkins", json=body, headers=other_world.h("volunteer"))
    assert r.status_code == 403


def test_offline_batch_reports_each_scan_and_is_idempotent(client, world):
    f = setup_field(client, world)
    sid = f["station_id"]
    codes = payloads(world)
    scans = [
        scan(sid, codes[1], yesterday_at(7, 5)),
        scan(sid, codes[1], yesterday_at(7, 50)),  # same window: duplicate
        scan(sid, codes[2], yesterday_at(7, 6)),
        scan(sid, codes[3], yesterday_at(12, 0)),  # outside
        scan(sid, forged(codes[5]), yesterday_at(7, 7)),
        scan(sid, codes[4], yesterday_at(7, 8), result="incorrect", reasons=["wrong_bin"]),
    ]
    scans.append(dict(scans[2]))  # the same client id twice in one batch is one scan
    url = f"/api/v1/communities/{world.community.id}/checkins/batch"
    r = client.post(url, json={"scans": scans}, headers=world.h("volunteer"))
    assert r.status_code == 200, r.text
    body = r.json()
    got = [(x["status"], x["reason"]) for x in body["results"]]
    assert got == [
        ("accepted", None),
        ("duplicate", None),
        ("accepted", None),
        ("rejected", "outside_window"),
        ("rejected", "forged_code"),
        ("accepted", None),
        ("accepted", None),
    ]
    assert body["results"][6]["checkin_id"] == body["results"][2]["checkin_id"]
    assert body["results"][6]["replayed"] is True
    assert (body["accepted"], body["duplicate"], body["rejected"]) == (4, 1, 2)

    again = client.post(url, json={"scans": scans}, headers=world.h("volunteer")).json()
    assert [(x["status"], x["reason"], x["checkin_id"]) for x in again["results"]] == [
        (x["status"], x["reason"], x["checkin_id"]) for x in body["results"]
    ]
    assert all(x["replayed"] for x in again["results"])
    # Part of it again, with one new scan: only the new one is new.
    part = client.post(url, json={"scans": scans[:2] + [scan(sid, codes[2], yesterday_at(18, 30))]}, headers=world.h("volunteer")).json()
    assert [x["replayed"] for x in part["results"]] == [True, True, False]
    assert balance(client, world, 1) == 10 and balance(client, world, 2) == 20 and balance(client, world, 4) == 0
    listed = client.get(f"/api/v1/communities/{world.community.id}/checkins", params={"limit": 200}, headers=world.h("committee")).json()
    assert len(listed["items"]) == 7


def test_batch_limits(client, world):
    f = setup_field(client, world)
    url = f"/api/v1/communities/{world.community.id}/checkins/batch"
    one = scan(f["station_id"], payload(world, 1), yesterday_at(7, 5))
    r = client.post(url, json={"scans": [one | {"client_id": cid()} for _ in range(1001)]}, headers=world.h("volunteer"))
    assert r.status_code == 422
    naive = one | {"scanned_at": yesterday_at(7, 5).replace(tzinfo=None).isoformat()}
    r = client.post(url, json={"scans": [naive]}, headers=world.h("volunteer"))
    assert r.status_code == 422 and r.json()["error"]["field"].startswith("scans.0.scanned_at")


def test_points_follow_the_rule_version_in_force_and_the_daily_cap(client, world):
    c = world.community.id
    f = setup_field(client, world)
    h = world.h("committee")
    # Retroactive rules are refused: past entries never change.
    r = client.post(f"/api/v1/communities/{c}/points-rules", json={"checkin_correct": 3, "effective_from": yesterday_at(0).isoformat()}, headers=h)
    assert r.status_code == 400 and r.json()["error"]["code"] == "retroactive_rule"
    assert client.post(f"/api/v1/communities/{c}/points-rules", json={"checkin_correct": 7}, headers=world.h("volunteer")).status_code == 403
    # The old scan (before the new version) keeps the old rate; an all-day window takes scans now.
    old = _post(client, world, scan(f["station_id"], payload(world, 6), yesterday_at(7, 30)))
    assert old.json()["points"] == 10
    r = client.post(f"/api/v1/communities/{c}/points-rules", json={"checkin_correct": 7, "daily_cap": 12}, headers=h)
    assert r.status_code == 201, r.text
    current = client.get(f"/api/v1/communities/{c}/points-rules/current", headers=world.h("volunteer")).json()
    assert current["checkin_correct"] == 7 and current["daily_cap"] == 12
    late = _post(client, world, scan(f["station_id"], payload(world, 6), yesterday_at(18, 30)))
    assert late.json()["points"] == 10  # scanned before the new version started
    r = client.patch(f"/api/v1/drop-windows/{f['morning']}", json={"start_time": "00:00", "end_time": "23:59:59.999999"}, headers=h)
    assert r.status_code == 409  # overlaps the evening window
    client.patch(f"/api/v1/drop-windows/{f['evening']}", json={"active": False}, headers=h)
    r = client.patch(f"/api/v1/drop-windows/{f['morning']}", json={"start_time": "00:00", "end_time": "23:59:59.999999"}, headers=h)
    assert r.status_code == 200, r.text
    now = _post(client, world, scan(f["station_id"], payload(world, 7), utcnow()))
    assert now.json()["points"] == 7
    assert [v["checkin_correct"] for v in client.get(f"/api/v1/communities/{c}/points-rules", headers=h).json()["items"]] == [7]
    assert balance(client, world, 6) == 20 and balance(client, world, 7) == 7


def test_reversal_keeps_the_record_and_takes_the_points_back(client, world):
    f = setup_field(client, world)
    r = _post(client, world, scan(f["station_id"], payload(world, 1), yesterday_at(7, 30)))
    checkin_id = r.json()["checkin_id"]
    url = f"/api/v1/checkins/{checkin_id}/reverse"
    assert client.post(url, json={"reason": "扫错门牌"}, headers=world.h("volunteer")).status_code == 403
    done = client.post(url, json={"reason": "扫错门牌"}, headers=world.h("supervisor"))
    assert done.status_code == 200, done.text
    assert done.json()["reversed"] is True and done.json()["status"] == "accepted"
    assert balance(client, world, 1) == 0
    again = client.post(url, json={"reason": "再次"}, headers=world.h("committee"))
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_reversed"
    assert balance(client, world, 1) == 0


def test_residents_see_their_own_checkins_only(client, world):
    f = setup_field(client, world)
    _post(client, world, scan(f["station_id"], payload(world, 0), yesterday_at(7, 30)))
    _post(client, world, scan(f["station_id"], payload(world, 1), yesterday_at(7, 30)))
    mine = client.get(f"/api/v1/households/{world.households[0].id}/checkins", headers=world.h("resident"))
    assert mine.status_code == 200 and len(mine.json()["items"]) == 1
    theirs = client.get(f"/api/v1/households/{world.households[1].id}/checkins", headers=world.h("resident"))
    assert theirs.status_code in (403, 404)


def test_station_and_window_rules(client, world):
    c = world.community.id
    h = world.h("committee")
    assert client.post(f"/api/v1/communities/{c}/drop-windows", json={"name": "x", "start_time": "09:00", "end_time": "08:00"}, headers=h).status_code == 422
    assert client.post(f"/api/v1/communities/{c}/stations", json={"name": "A"}, headers=h).status_code == 201
    dup = client.post(f"/api/v1/communities/{c}/stations", json={"name": "A"}, headers=h)
    assert dup.status_code == 409
    assert client.post(f"/api/v1/communities/{c}/stations", json={"name": "B"}, headers=world.h("volunteer")).status_code == 403
    stations = client.get(f"/api/v1/communities/{c}/stations", headers=world.h("volunteer")).json()["items"]
    assert [s["name"] for s in stations] == ["A"]


def test_patterns_are_enforced(client, world):
    """Client ids and weekday lists have a fixed alphabet: anything else is a clear 422, nothing stored."""
    f = setup_field(client, world)
    c = world.community.id
    bad = scan(f["station_id"], payload(world, 1), yesterday_at(7, 5)) | {"client_id": "扫码记录一二三四五六"}
    r = _post(client, world, bad)
    assert r.status_code == 422 and r.json()["error"]["field"] == "client_id", r.text
    r = client.post(f"/api/v1/communities/{c}/drop-windows", json={"name": "周末", "start_time": "10:00", "end_time": "11:00", "weekdays": "89"},
                    headers=world.h("committee"))
    assert r.status_code == 422 and r.json()["error"]["field"] == "weekdays", r.text
    listed = client.get(f"/api/v1/communities/{c}/checkins", headers=world.h("committee")).json()["items"]
    assert listed == []
    assert balance(client, world, 1) == 0


def _all_day_with_cap(client, world, cap: int) -> dict:
    """One all-day window (so a scan now is inside it) and a daily cap from now on. The test sets the
    clock first (`clock.set_local(NOON)`), so that its acts of "today" stay in one local day."""
    f = setup_field(client, world)
    h = world.h("committee")
    client.patch(f"/api/v1/drop-windows/{f['evening']}", json={"active": False}, headers=h)
    r = client.patch(f"/api/v1/drop-windows/{f['morning']}", json={"start_time": "00:00", "end_time": "23:59:59.999999"}, headers=h)
    assert r.status_code == 200, r.text
    r = client.post(f"/api/v1/communities/{world.community.id}/points-rules", json={"checkin_correct": 10, "daily_cap": cap}, headers=h)
    assert r.status_code == 201, r.text
    return f


def _paper_day(client, world) -> int:
    """Today's recycling day taking paper at 5 points per kg."""
    from tests.field import local_day

    c = world.community.id
    h = world.h("committee")
    r = client.put(f"/api/v1/communities/{c}/recycling-rates/paper", json={"name": "废纸", "unit": "kg", "points": 5}, headers=h)
    assert r.status_code == 201, r.text
    body = {"occurs_on": local_day().isoformat(), "start_time": "00:00", "end_time": "23:59", "place": "社区广场"}
    r = client.post(f"/api/v1/communities/{c}/recycling-events", json=body, headers=h)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_a_reversed_checkin_no_longer_counts_toward_the_daily_cap(client, world, clock):
    clock.set_local(NOON)  # the test's "today" stays one local day
    f = _all_day_with_cap(client, world, 10)
    first = _post(client, world, scan(f["station_id"], payload(world, 3), utcnow()))
    assert first.json()["points"] == 10
    eid = _paper_day(client, world)
    weigh = {"payload": payload(world, 3), "category": "paper", "weight_g": 2000}
    capped = client.post(f"/api/v1/recycling-events/{eid}/weigh-ins", json={"client_id": cid()} | weigh, headers=world.h("clerk"))
    assert capped.status_code == 201 and capped.json()["points"] == 0  # the cap is reached
    # The check-in scanned the wrong door: reversed, its 10 points no longer count today.
    done = client.post(f"/api/v1/checkins/{first.json()['checkin_id']}/reverse", json={"reason": "扫错门牌"}, headers=world.h("supervisor"))
    assert done.status_code == 200, done.text
    assert balance(client, world, 3) == 0
    more = client.post(f"/api/v1/recycling-events/{eid}/weigh-ins", json={"client_id": cid()} | weigh, headers=world.h("clerk"))
    assert more.status_code == 201 and more.json()["points"] == 10
    over = client.post(f"/api/v1/recycling-events/{eid}/weigh-ins", json={"client_id": cid()} | weigh, headers=world.h("clerk"))
    assert over.json()["points"] == 0  # still capped at 10 a day
    # Reversing an act cut to nothing frees nothing; reversing the credited one frees its 10 again.
    assert client.post(f"/api/v1/weigh-ins/{over.json()['id']}/reverse", json={"reason": "x"}, headers=world.h("clerk")).status_code == 200
    assert client.post(f"/api/v1/weigh-ins/{more.json()['id']}/reverse", json={"reason": "x"}, headers=world.h("clerk")).status_code == 200
    last = client.post(f"/api/v1/recycling-events/{eid}/weigh-ins", json={"client_id": cid()} | weigh | {"weight_g": 4000}, headers=world.h("clerk"))
    assert last.json()["points"] == 10
    assert balance(client, world, 3) == 10

    # The single check-in (one statement on PostgreSQL) counts against the same net counter.
    other = {"payload": payload(world, 5), "category": "paper", "weight_g": 1600}  # 8 points
    first8 = client.post(f"/api/v1/recycling-events/{eid}/weigh-ins", json={"client_id": cid()} | other, headers=world.h("clerk"))
    assert first8.json()["points"] == 8
    cut = _post(client, world, scan(f["station_id"], payload(world, 5), utcnow()))
    assert cut.status_code == 201 and cut.json()["points"] == 2  # what is left under the cap of 10
    client.post(f"/api/v1/weigh-ins/{first8.json()['id']}/reverse", json={"reason": "x"}, headers=world.h("clerk"))
    again8 = client.post(f"/api/v1/recycling-events/{eid}/weigh-ins", json={"client_id": cid()} | other, headers=world.h("clerk"))
    assert again8.json()["points"] == 8 and balance(client, world, 5) == 10


def test_a_batch_posts_each_households_credits_in_order_with_running_balances(client, world):
    """Several credited scans of one household in one upload: one entry each, numbered in the order
    recorded, each with the balance it leaves; the passbook and `ledger verify` agree."""
    from tests.ledger.helpers import verify_clean

    f = setup_field(client, world)
    sid = f["station_id"]
    codes = payloads(world)
    two_days_ago = yesterday_at(7, 10) - timedelta(days=1)
    scans = [
        scan(sid, codes[1], yesterday_at(18, 30)),
        scan(sid, codes[1], yesterday_at(7, 5)),
        scan(sid, codes[1], yesterday_at(19, 0)),  # the evening slot is taken by 18:30
        scan(sid, codes[1], two_days_ago),
        scan(sid, codes[2], yesterday_at(7, 20), weight_g=1500),
    ]
    url = f"/api/v1/communities/{world.community.id}/checkins/batch"
    body = client.post(url, json={"scans": scans}, headers=world.h("volunteer")).json()
    assert [(x["status"], x["points"]) for x in body["results"]] == [
        ("accepted", 10), ("accepted", 10), ("duplicate", 0), ("accepted", 10), ("accepted", 10),
    ]
    hid = world.households[1].id
    lines = client.get(f"/api/v1/households/{hid}/statement", headers=world.h("committee")).json()["items"]
    assert sorted(x["balance_after"] for x in lines) == [10, 20, 30]
    assert all(x["points_in"] == 10 and x["memo"] == "桶边督导 厨余 分类正确" for x in lines)
    assert balance(client, world, 1) == 30 and balance(client, world, 2) == 10
    again = client.post(url, json={"scans": scans}, headers=world.h("volunteer")).json()
    assert [(x["status"], x["points"], x["replayed"]) for x in again["results"]] == [
        (x["status"], x["points"], True) for x in body["results"]
    ]
    assert balance(client, world, 1) == 30
    verify_clean(world.engine, world.community.id)


def test_a_batch_stays_under_the_daily_cap(client, world, clock):
    """An upload under a daily cap: each household's scans of the day take what is left under the cap,
    in order; the check-in keeps the points granted; re-sending changes nothing."""
    from tests.ledger.helpers import verify_clean

    # Two scans of today, 5 and 100 s from now (the cap's rule starts now: it cannot be back-dated), in
    # two windows that meet between them: all in one local day, far from its ends.
    clock.set_local(NOON)  # the test's "today" stays one local day
    f = _all_day_with_cap(client, world, 25)
    now = clock.now()
    h = world.h("committee")
    split = (now + timedelta(minutes=1)).astimezone(SHANGHAI).time().replace(microsecond=0)
    r = client.patch(f"/api/v1/drop-windows/{f['morning']}", json={"end_time": split.isoformat()}, headers=h)
    assert r.status_code == 200, r.text
    r = client.patch(
        f"/api/v1/drop-windows/{f['evening']}",
        json={"start_time": split.isoformat(), "end_time": "23:59:59.999999", "active": True},
        headers=h,
    )
    assert r.status_code == 200, r.text
    eid = _paper_day(client, world)
    weigh = {"client_id": cid(), "payload": payload(world, 3), "category": "paper", "weight_g": 1600}  # 8 points
    assert client.post(f"/api/v1/recycling-events/{eid}/weigh-ins", json=weigh, headers=world.h("clerk")).json()["points"] == 8

    early, late = now + timedelta(seconds=5), now + timedelta(seconds=100)
    sid = f["station_id"]
    scans = [
        scan(sid, payload(world, 3), late),  # 25 - 8 - 10 = 7 left
        scan(sid, payload(world, 3), early),
        scan(sid, payload(world, 4), early),
    ]
    url = f"/api/v1/communities/{world.community.id}/checkins/batch"
    body = client.post(url, json={"scans": scans}, headers=world.h("volunteer")).json()
    assert [(x["status"], x["points"]) for x in body["results"]] == [("accepted", 7), ("accepted", 10), ("accepted", 10)]
    assert balance(client, world, 3) == 25 and balance(client, world, 4) == 10
    listed = client.get(
        f"/api/v1/communities/{world.community.id}/checkins", params={"household_id": world.households[3].id}, headers=h
    ).json()["items"]
    assert sorted(x["points"] for x in listed) == [7, 10]
    again = client.post(url, json={"scans": scans}, headers=world.h("volunteer")).json()
    assert [(x["points"], x["replayed"]) for x in again["results"]] == [(7, True), (10, True), (10, True)]
    assert balance(client, world, 3) == 25
    # The cap is spent: a later act of the day earns nothing.
    weigh["client_id"] = cid()
    assert client.post(f"/api/v1/recycling-events/{eid}/weigh-ins", json=weigh, headers=world.h("clerk")).json()["points"] == 0
    verify_clean(world.engine, world.community.id)
