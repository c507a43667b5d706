"""Recycling days through the API: schedules, exceptions, calendar feed, rates, weigh-ins, 去向."""

from __future__ import annotations

from datetime import date, timedelta

from icalendar import Calendar
from sqlmodel import Session

from tests.field import balance, cid, local_day, make_member, payload


def _next_saturday() -> date:
    today = local_day()
    return today + timedelta(days=(5 - today.weekday()) % 7 or 7)


def _schedule(client, world, **extra):
    body = {
        "rrule": "FREQ=WEEKLY;INTERVAL=2;BYDAY=SA",
        "starts_on": _next_saturday().isoformat(),
        "start_time": "09:00",
        "end_time": "11:00",
        "place": "北门广场",
    } | extra
    r = client.post(f"/api/v1/communities/{world.community.id}/recycling-schedules", json=body, headers=world.h("committee"))
    assert r.status_code == 201, r.text
    return r.json()


def _events(client, world, role="committee", **params):
    r = client.get(f"/api/v1/communities/{world.community.id}/recycling-events", params={"limit": 200} | params, headers=world.h(role))
    assert r.status_code == 200, r.text
    return r.json()["items"]


def _rates(client, world):
    c = world.community.id
    h = world.h("committee")
    for code, body in {
        "paper": {"name": "废纸", "unit": "kg", "points": 5},
        "milk_carton": {"name": "牛奶盒", "unit": "item", "points": 1},
        "clothes": {"name": "旧衣物", "unit": "kg", "points": 2, "notes": "内衣除外、7成新以上，必须清洗干净且消毒"},
    }.items():
        r = client.put(f"/api/v1/communities/{c}/recycling-rates/{code}", json=body, headers=h)
        assert r.status_code == 201, r.text


def _today_event(client, world):
    body = {"occurs_on": local_day().isoformat(), "start_time": "00:00", "end_time": "23:59", "place": "社区广场"}
    r = client.post(f"/api/v1/communities/{world.community.id}/recycling-events", json=body, headers=world.h("committee"))
    assert r.status_code == 201, r.text
    return r.json()


def _weigh(client, world, event_id, role="clerk", **body):
    return client.post(f"/api/v1/recycling-events/{event_id}/weigh-ins", json={"client_id": cid()} | body, headers=world.h(role))


def test_schedule_generates_dated_events_in_local_time(client, world):
    s = _schedule(client, world, until=(_next_saturday() + timedelta(days=70)).isoformat())
    events = _events(client, world, role="resident")  # residents see their community's days
    days = [date.fromisoformat(e["occurs_on"]) for e in events]
    assert days == [_next_saturday() + timedelta(days=14 * i) for i in range(6)]
    assert all(e["starts_at"].startswith(f"{e['occurs_on']}T01:00") for e in events)  # 09:00 Asia/Shanghai
    assert events[0]["schedule_id"] == s["id"] and events[0]["place"] == "北门广场"
    bad = client.post(
        f"/api/v1/communities/{world.community.id}/recycling-schedules",
        json={"rrule": "FREQ=SOMETIMES", "starts_on": "2026-12-05", "start_time": "09:00", "end_time": "11:00", "place": "x"},
        headers=world.h("committee"),
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_rrule"
    assert client.post(f"/api/v1/communities/{world.community.id}/recycling-schedules", json={}, headers=world.h("clerk")).status_code in (403, 422)


def test_exceptions_cancel_or_move_one_occurrence(client, world):
    s = _schedule(client, world)
    first = _next_saturday()
    url = f"/api/v1/recycling-schedules/{s['id']}/exceptions"
    h = world.h("committee")
    r = client.post(url, json={"original_date": first.isoformat(), "action": "cancel", "note": "因雨取消"}, headers=h)
    assert r.status_code == 201 and r.json()["status"] == "cancelled"
    second = first + timedelta(days=14)
    r = client.post(url, json={"original_date": second.isoformat(), "action": "move", "new_date": (second + timedelta(days=1)).isoformat(), "new_place": "南门"}, headers=h)
    assert r.status_code == 201, r.text
    assert r.json()["occurs_on"] == (second + timedelta(days=1)).isoformat() and r.json()["place"] == "南门"
    assert client.post(url, json={"original_date": first.isoformat(), "action": "cancel"}, headers=h).status_code == 409
    off = client.post(url, json={"original_date": (first + timedelta(days=7)).isoformat(), "action": "cancel"}, headers=h)
    assert off.status_code == 400 and off.json()["error"]["code"] == "not_an_occurrence"
    assert client.post(url, json={"original_date": second.isoformat(), "action": "move"}, headers=h).status_code == 422
    statuses = {e["original_date"]: e["status"] for e in _events(client, world, end=(second + timedelta(days=1)).isoformat())}
    assert statuses == {first.isoformat(): "cancelled", second.isoformat(): "scheduled"}


def test_calendar_feed(client, world, other_world):
    s = _schedule(client, world, until=(_next_saturday() + timedelta(days=30)).isoformat())
    client.post(f"/api/v1/recycling-schedules/{s['id']}/exceptions", json={"original_date": _next_saturday().isoformat(), "action": "cancel"}, headers=world.h("committee"))
    link = client.get(f"/api/v1/communities/{world.community.id}/recycling-calendar-link", headers=world.h("resident"))
    assert link.status_code == 200
    url = link.json()["url"]
    assert client.get(f"/api/v1/communities/{world.community.id}/recycling-calendar-link", headers=other_world.h("resident")).status_code in (403, 404)
    feed = client.get(url[url.index("/ical/"):])
    assert feed.status_code == 200 and feed.headers["content-type"].startswith("text/calendar")
    cal = Calendar.from_ical(feed.content)
    events = [c for c in cal.walk("VEVENT")]
    assert len(events) == 3
    assert [str(e["status"]) for e in events] == ["CANCELLED", "CONFIRMED", "CONFIRMED"]
    assert events[1].decoded("dtstart").hour == 9 and str(events[1]["location"]) == "北门广场"
    assert any(c.name == "VTIMEZONE" for c in cal.walk())
    forged = url[url.index("/ical/"):].rsplit("=", 1)[0] + "=" + "a" * 32
    assert client.get(forged).status_code == 404


def test_weigh_ins_earn_points_from_the_event_rates(client, world):
    _rates(client, world)
    event = _today_event(client, world)
    assert [c["code"] for c in event["categories"]] == ["clothes", "milk_carton", "paper"]
    eid = event["id"]
    code = payload(world, 1)
    r = _weigh(client, world, eid, payload=code, category="paper", weight_g=2500)
    assert r.status_code == 201, r.text
    assert r.json()["points"] == 12 and r.json()["household_id"] == world.households[1].id
    body = {"client_id": cid(), "payload": code, "category": "milk_carton", "count": 10}
    first = client.post(f"/api/v1/recycling-events/{eid}/weigh-ins", json=body, headers=world.h("volunteer"))
    again = client.post(f"/api/v1/recycling-events/{eid}/weigh-ins", json=body, headers=world.h("volunteer"))
    assert (first.status_code, again.status_code) == (201, 200) and first.json() == again.json()
    assert balance(client, world, 1) == 22

    assert _weigh(client, world, eid, payload=code, category="milk_carton").json()["error"]["code"] == "count_required"
    assert _weigh(client, world, eid, payload=code, category="glass", weight_g=100).json()["error"]["code"] == "unknown_category"
    assert _weigh(client, world, eid, category="paper", weight_g=100).status_code == 422  # neither code nor walk-in
    walk_in_body = {"client_id": cid(), "walk_in": True, "category": "clothes", "weight_g": 3000}
    walk_in = client.post(f"/api/v1/recycling-events/{eid}/weigh-ins", json=walk_in_body, headers=world.h("clerk"))
    assert walk_in.status_code == 201 and walk_in.json()["household_id"] is None and walk_in.json()["points"] == 6
    claim_code = walk_in.json()["voucher_code"]
    assert claim_code and walk_in.json()["voucher_label_svg"].startswith("<")
    again = client.post(f"/api/v1/recycling-events/{eid}/weigh-ins", json=walk_in_body, headers=world.h("clerk"))
    assert again.status_code == 200 and again.json()["voucher_code"] == claim_code and again.json()["voucher_id"] == walk_in.json()["voucher_id"]
    listed = client.get(f"/api/v1/recycling-events/{eid}/weigh-ins", headers=world.h("committee")).json()["items"]
    assert all(x["voucher_code"] is None for x in listed)  # the code is shown to the issuing clerk only
    claimed = client.post(f"/api/v1/households/{world.households[0].id}/voucher-claims", json={"code": claim_code}, headers=world.h("resident"))
    assert claimed.status_code == 200, claimed.text
    assert balance(client, world, 0) == 6
    rev = client.post(f"/api/v1/weigh-ins/{walk_in.json()['id']}/reverse", json={"reason": "x"}, headers=world.h("committee"))
    assert rev.status_code == 200 and rev.json()["reversed"] is True  # the claimed cheque's credit is taken back
    assert balance(client, world, 0) == 0

    # Changing the community's rate now does not change this event, whose rates were fixed at its first weigh-in.
    client.put(f"/api/v1/communities/{world.community.id}/recycling-rates/paper", json={"name": "废纸", "unit": "kg", "points": 50}, headers=world.h("committee"))
    paper = _weigh(client, world, eid, payload=code, category="paper", weight_g=1000)
    assert paper.status_code == 201, paper.text
    assert paper.json()["points"] == 5
    r = client.put(f"/api/v1/recycling-events/{eid}/categories", json=[], headers=world.h("committee"))
    assert r.status_code == 409
    totals = {t["category"]: t for t in client.get(f"/api/v1/recycling-events/{eid}/totals", headers=world.h("committee")).json()["items"]}
    assert totals["paper"]["weight_g"] == 3500 and totals["milk_carton"]["count"] == 10 and "clothes" not in totals  # reversed


def test_weigh_in_corrections_are_reversals(client, world):
    _rates(client, world)
    eid = _today_event(client, world)["id"]
    r = _weigh(client, world, eid, payload=payload(world, 2), category="paper", weight_g=4000)
    assert balance(client, world, 2) == 20
    url = f"/api/v1/weigh-ins/{r.json()['id']}/reverse"
    assert client.post(url, json={"reason": "称错"}, headers=world.h("volunteer")).status_code == 403
    done = client.post(url, json={"reason": "称错"}, headers=world.h("clerk"))
    assert done.status_code == 200 and done.json()["reversed"] is True and done.json()["points"] == 20
    assert balance(client, world, 2) == 0
    assert client.post(url, json={"reason": "again"}, headers=world.h("committee")).status_code == 409
    totals = client.get(f"/api/v1/recycling-events/{eid}/totals", headers=world.h("committee")).json()["items"]
    assert totals == []


def _walk_in(client, world, eid, weight_g=3000):
    r = _weigh(client, world, eid, walk_in=True, category="clothes", weight_g=weight_g)
    assert r.status_code == 201, r.text
    return r.json()


def _voucher(client, world, voucher_id):
    r = client.get(f"/api/v1/vouchers/{voucher_id}", headers=world.h("committee"))
    assert r.status_code == 200, r.text
    return r.json()


def _ledger_ok(client, world):
    report = client.get(f"/api/v1/communities/{world.community.id}/ledger/verify", headers=world.h("committee")).json()
    assert report["balance_mismatches"] == [] and report["unbalanced_entries"] == [] and report["chain_breaks"] == []


def _entries(world) -> int:
    from sqlalchemy import text
    from sqlmodel import Session

    with Session(world.engine) as s:
        return s.execute(text("SELECT count(*) FROM journal_entry")).scalar_one()


def test_reversing_an_unclaimed_walk_in_cancels_its_voucher(client, world):
    _rates(client, world)
    eid = _today_event(client, world)["id"]
    walk_in = _walk_in(client, world, eid)
    url = f"/api/v1/weigh-ins/{walk_in['id']}/reverse"
    before = _entries(world)
    done = client.post(url, json={"reason": "称重有误"}, headers=world.h("clerk"))
    assert done.status_code == 200, done.text
    assert done.json()["reversed"] is True and done.json()["points"] == 6  # the record stays as it was
    assert _entries(world) == before + 1  # one new entry puts the cheque's points back (vouchers → issued)
    assert _voucher(client, world, walk_in["voucher_id"])["status"] == "cancelled"
    claim = client.post(
        f"/api/v1/households/{world.households[0].id}/voucher-claims", json={"code": walk_in["voucher_code"]}, headers=world.h("resident")
    )
    assert claim.status_code == 409 and claim.json()["error"]["code"] == "voucher_invalid"
    assert balance(client, world, 0) == 0
    again = client.post(url, json={"reason": "称重有误"}, headers=world.h("clerk"))
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_reversed"
    assert _entries(world) == before + 1
    assert client.get(f"/api/v1/recycling-events/{eid}/totals", headers=world.h("committee")).json()["items"] == []
    _ledger_ok(client, world)


def test_reversing_a_claimed_walk_in_takes_the_household_credit_back(client, world):
    _rates(client, world)
    eid = _today_event(client, world)["id"]
    walk_in = _walk_in(client, world, eid, weight_g=5000)
    hid = world.households[0].id
    claimed = client.post(f"/api/v1/households/{hid}/voucher-claims", json={"code": walk_in["voucher_code"]}, headers=world.h("resident"))
    assert claimed.status_code == 200, claimed.text
    assert balance(client, world, 0) == 10
    url = f"/api/v1/weigh-ins/{walk_in['id']}/reverse"
    before = _entries(world)
    done = client.post(url, json={"reason": "不是旧衣物"}, headers=world.h("committee"))
    assert done.status_code == 200, done.text
    assert balance(client, world, 0) == 0
    assert _entries(world) == before + 2  # the claim reversed (household → vouchers), then the issue
    assert _voucher(client, world, walk_in["voucher_id"])["status"] == "cancelled"
    assert client.post(url, json={"reason": "again"}, headers=world.h("committee")).status_code == 409
    retried = client.post(f"/api/v1/households/{hid}/voucher-claims", json={"code": walk_in["voucher_code"]}, headers=world.h("resident"))
    assert retried.status_code == 409 and retried.json()["error"]["code"] == "voucher_invalid"  # not "claimed" any more
    assert balance(client, world, 0) == 0 and _entries(world) == before + 2
    _ledger_ok(client, world)


def test_reversing_a_walk_in_whose_cheque_expired_takes_the_expiry_back_too(client, world):
    from sqlalchemy import text
    from sqlmodel import Session

    _rates(client, world)
    eid = _today_event(client, world)["id"]
    walk_in = _walk_in(client, world, eid)
    with Session(world.engine) as s:  # ninety days later: the cheque was never claimed
        s.execute(text("UPDATE voucher SET expires_at = :t WHERE id = :v"), {"t": "2020-01-01 00:00:00", "v": walk_in["voucher_id"]})
        s.commit()
    run = client.post(f"/api/v1/communities/{world.community.id}/vouchers/expiry-runs", headers=world.h("committee"))
    assert run.status_code == 200 and run.json()["expired"] == 1, run.text
    before = _entries(world)
    done = client.post(f"/api/v1/weigh-ins/{walk_in['id']}/reverse", json={"reason": "称错"}, headers=world.h("clerk"))
    assert done.status_code == 200, done.text
    assert _entries(world) == before + 2  # the expiry reversed (expired → vouchers), then the issue
    assert _voucher(client, world, walk_in["voucher_id"])["status"] == "cancelled"
    _ledger_ok(client, world)


def test_a_claimed_walk_in_whose_points_were_spent_is_refused_clearly(client, world):
    _rates(client, world)
    eid = _today_event(client, world)["id"]
    walk_in = _walk_in(client, world, eid, weight_g=5000)
    hid = world.households[0].id
    client.post(f"/api/v1/households/{hid}/voucher-claims", json={"code": walk_in["voucher_code"]}, headers=world.h("resident"))
    spent = client.post(
        f"/api/v1/households/{hid}/adjustments", json={"points": -8, "reason": "兑换毛巾", "idempotency_key": cid()}, headers=world.h("committee")
    )
    assert spent.status_code == 201, spent.text
    before = _entries(world)
    url = f"/api/v1/weigh-ins/{walk_in['id']}/reverse"
    refused = client.post(url, json={"reason": "称错"}, headers=world.h("committee") | {"Accept-Language": "en"})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "voucher_points_spent"
    assert "no longer has enough points" in refused.json()["error"]["message"]
    zh = client.post(url, json={"reason": "称错"}, headers=world.h("committee"))
    assert zh.status_code == 409 and "余额不足" in zh.json()["error"]["message"]
    assert balance(client, world, 0) == 2 and _entries(world) == before
    assert _voucher(client, world, walk_in["voucher_id"])["status"] == "claimed"
    listed = client.get(f"/api/v1/recycling-events/{eid}/weigh-ins", headers=world.h("committee")).json()["items"]
    assert [x["reversed"] for x in listed if x["id"] == walk_in["id"]] == [False]
    _ledger_ok(client, world)


def test_weigh_ins_only_on_open_days(client, world):
    _rates(client, world)
    s = _schedule(client, world)
    future = _events(client, world)[0]
    r = _weigh(client, world, future["id"], payload=payload(world, 1), category="paper", weight_g=100)
    assert r.status_code == 409 and r.json()["error"]["code"] == "event_not_started"
    client.post(f"/api/v1/recycling-schedules/{s['id']}/exceptions", json={"original_date": future["original_date"], "action": "cancel"}, headers=world.h("committee"))
    r = _weigh(client, world, future["id"], payload=payload(world, 1), category="paper", weight_g=100)
    assert r.json()["error"]["code"] == "event_cancelled"


def test_destinations_are_visible_to_households_that_took_part(client, world):
    _rates(client, world)
    eid = _today_event(client, world)["id"]
    _weigh(client, world, eid, payload=payload(world, 0), category="clothes", weight_g=2000)
    d = client.post(
        f"/api/v1/recycling-events/{eid}/destinations",
        json={"client_id": cid(), "category": "clothes", "quantity_g": 2000, "kind": "charity", "destination": "某公益旧衣回收项目"},
        headers=world.h("clerk"),
    )
    assert d.status_code == 201, d.text
    bad = client.post(f"/api/v1/recycling-events/{eid}/destinations", json={"client_id": cid(), "category": "clothes", "kind": "city", "destination": "x"}, headers=world.h("clerk"))
    assert bad.status_code == 422
    # households[0] is the resident's: they took part, so they see where it went.
    mine = client.get(f"/api/v1/recycling-events/{eid}/destinations", headers=world.h("resident"))
    assert mine.status_code == 200 and mine.json()["items"][0]["destination"] == "某公益旧衣回收项目"
    assert [x["kind"] for x in client.get(f"/api/v1/households/{world.households[0].id}/recycling-destinations", headers=world.h("resident")).json()["items"]] == ["charity"]
    other = make_member(world, "volunteer", 3)  # a resident who did not take part
    assert client.get(f"/api/v1/recycling-events/{eid}/destinations", headers=other).status_code == 200  # volunteer is staff
    assert client.get(f"/api/v1/households/{world.households[3].id}/recycling-destinations", headers=other).json()["items"] == []
    # A resident of the community whose household brought nothing: not for them (the permission's rule).
    with Session(world.engine) as s:
        world._add_resident(s, "neighbour", world.households[4].id)
    refused = client.get(f"/api/v1/recycling-events/{eid}/destinations", headers=world.h("neighbour"))
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert client.get(f"/api/v1/recycling-events/{eid}", headers=world.h("neighbour")).status_code == 200  # the day itself is theirs
