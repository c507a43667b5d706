"""The hand-entry code printed under every door-plate QR code (手工输入码): accepted wherever a scan is,
however it is typed, recorded as typed, refused for the same reasons as a scan, throttled per volunteer."""

from __future__ import annotations

import uuid

from tests.field import cid, local_day, make_member, payload, scan, setup_field, yesterday_at
from tests.ledger.helpers import earn
from tests.rewards.helpers import add_item, consent_code, counter


def _spaced(code: str) -> str:
    return f" {code[:4].lower()} - {code[4:]} "


def _fullwidth(code: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) for c in code)


def _resolve(client, world, text, role="volunteer", headers=None):
    return client.post("/api/v1/scan/resolve", json={"payload": text}, headers=headers or world.h(role))


def test_resolve_takes_the_code_however_it_is_typed(client, world):
    household = world.households[3]
    code = household.public_code
    for typed in (code, code.lower(), _spaced(code), f"{code[:4]}-{code[4:]}", _fullwidth(code), f"{code[:4]}－{code[4:]}"):
        r = _resolve(client, world, typed)
        assert r.status_code == 200, (typed, r.text)
        assert r.json()["id"] == household.id
    # Cyrillic capitals that look like Latin ones (a keyboard left on another language) read as Latin.
    cyrillic = code.translate(str.maketrans("ABEKMHPCTXY", "АВЕКМНРСТХУ"))
    if cyrillic != code:
        assert _resolve(client, world, cyrillic).json()["id"] == household.id


def test_a_mistyped_code_says_what_to_check(client, world):
    wrong = "OOOO1111"  # no code has 0, O, 1 or I
    r = _resolve(client, world, wrong)
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_code"
    assert "手工输入码" in r.json()["error"]["message"] and "0、O、1、I" in r.json()["error"]["message"]
    assert _resolve(client, world, "！？").json()["error"]["code"] == "forged_code"  # no code at all


def test_resolve_refuses_as_a_scan_would_with_its_own_reason(client, world, other_world):
    own = make_member(world, "volunteer", 2)
    r = _resolve(client, world, world.households[2].public_code, headers=own)
    assert r.status_code == 403 and r.json()["error"]["code"] == "own_household" and "自己家" in r.json()["error"]["message"]
    r = _resolve(client, world, world.households[0].public_code, role="volunteer", headers=other_world.h("volunteer"))
    assert r.status_code == 403 and r.json()["error"]["code"] == "other_community" and "不属于本社区" in r.json()["error"]["message"]
    moved = world.households[5]
    assert client.patch(f"/api/v1/households/{moved.id}", json={"status": "moved_out"}, headers=world.h("committee")).status_code == 200
    r = _resolve(client, world, moved.public_code)
    assert r.status_code == 403 and r.json()["error"]["code"] == "moved_out" and "迁出" in r.json()["error"]["message"]


def test_household_search_finds_the_typed_code(client, world):
    household = world.households[6]
    r = client.get(f"/api/v1/communities/{world.community.id}/households", params={"q": _spaced(household.public_code)}, headers=world.h("volunteer"))
    assert r.status_code == 200, r.text
    assert [h["id"] for h in r.json()["items"]] == [household.id]
    by_plate = client.get(f"/api/v1/communities/{world.community.id}/households", params={"q": "101"}, headers=world.h("volunteer"))
    assert len(by_plate.json()["items"]) == 2  # the door plate still finds both buildings' 101


def test_compost_drops_weigh_ins_and_the_counter_take_typed_codes(client, world):
    c = world.community.id
    site = client.post(f"/api/v1/communities/{c}/compost-sites", json={"name": "东堆肥点"}, headers=world.h("compost_keeper")).json()
    bin_ = client.post(f"/api/v1/compost-sites/{site['id']}/bins", json={"name": "1号箱", "method": "box", "capacity_l": 200}, headers=world.h("compost_keeper")).json()
    drop = client.post(f"/api/v1/compost-bins/{bin_['id']}/drops", json={"client_id": cid(), "payload": _spaced(world.households[1].public_code), "weight_g": 1000}, headers=world.h("volunteer"))
    assert drop.status_code == 201, drop.text
    assert drop.json()["household_id"] == world.households[1].id and drop.json()["typed"] is True
    scanned = client.post(f"/api/v1/compost-bins/{bin_['id']}/drops", json={"client_id": cid(), "payload": payload(world, 1), "weight_g": 500}, headers=world.h("volunteer"))
    assert scanned.json()["typed"] is False

    r = client.put(f"/api/v1/communities/{c}/recycling-rates/paper", json={"name": "废纸", "unit": "kg", "points": 5}, headers=world.h("committee"))
    assert r.status_code == 201, r.text
    event = client.post(f"/api/v1/communities/{c}/recycling-events", json={"occurs_on": local_day().isoformat(), "start_time": "00:00", "end_time": "23:59", "place": "广场"}, headers=world.h("committee")).json()
    w = client.post(f"/api/v1/recycling-events/{event['id']}/weigh-ins", json={"client_id": cid(), "payload": world.households[2].public_code.lower(), "category": "paper", "weight_g": 2000}, headers=world.h("clerk"))
    assert w.status_code == 201, w.text
    assert w.json()["household_id"] == world.households[2].id and w.json()["typed"] is True and w.json()["points"] == 10

    # The redemption desk: the typed code says which household; the resident's consent is still needed.
    h = world.households[0]
    earn(world.engine, h, 50)
    bag = add_item(world, price_points=10, stock=5)
    r = counter(world, {"payload": _spaced(h.public_code), "items": [{"item_id": bag["id"]}]})
    assert r.status_code == 403 and r.json()["error"]["code"] == "consent_required"
    r = counter(world, {"payload": _spaced(h.public_code), "consent_code": consent_code(world), "items": [{"item_id": bag["id"]}]})
    assert r.status_code == 201 and r.json()["household_id"] == h.id
    r = counter(world, {"payload": world.households[1].public_code, "consent_code": consent_code(world), "items": [{"item_id": bag["id"]}]})
    assert r.status_code == 403 and r.json()["error"]["code"] == "consent_code_other_household"
    r = counter(world, {"payload": "ZZZZZZZZ", "consent_code": consent_code(world), "items": [{"item_id": bag["id"]}], "idempotency_key": uuid.uuid4().hex})
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_code"


def test_typed_codes_are_throttled_per_volunteer(client, world, clock):
    f = setup_field(client, world)
    c = world.community.id
    misses = [_resolve(client, world, f"ZZZZZZ{a}{b}").status_code for a in "23" for b in "23456"]
    assert misses == [404] * 10
    # Locked out of typing: even a right code is refused for a while, with Retry-After...
    locked = _resolve(client, world, world.households[1].public_code)
    assert locked.status_code == 429 and locked.json()["error"]["code"] == "too_many_attempts" and int(locked.headers["retry-after"]) >= 1
    r = client.post(f"/api/v1/communities/{c}/checkins", json=scan(f["station_id"], world.households[1].public_code, yesterday_at(7, 30)), headers=world.h("volunteer"))
    assert r.status_code == 429
    # ...but scanning the QR code works, and another volunteer may type.
    assert _resolve(client, world, payload(world, 1)).status_code == 200
    assert _resolve(client, world, world.households[1].public_code, role="supervisor").status_code == 200
    # An offline upload meanwhile: its scanned codes are recorded, its typed ones held (not stored).
    batch = [scan(f["station_id"], world.households[2].public_code, yesterday_at(7, 31)), scan(f["station_id"], payload(world, 3), yesterday_at(7, 32))]
    url = f"/api/v1/communities/{c}/checkins/batch"
    r = client.post(url, json={"scans": batch}, headers=world.h("volunteer"))
    assert r.status_code == 200, r.text
    assert [(x["status"], x["reason"], x["checkin_id"] is None) for x in r.json()["results"]] == [
        ("rejected", "too_many_attempts", True), ("accepted", None, False),
    ]
    clock.advance(minutes=6)
    assert _resolve(client, world, world.households[1].public_code).status_code == 200
    # The phone sends its queue again after the lockout: the held scan is decided now.
    again = client.post(url, json={"scans": batch}, headers=world.h("volunteer")).json()["results"]
    assert [(x["status"], x["household_id"], x["replayed"]) for x in again] == [
        ("accepted", world.households[2].id, False), ("accepted", world.households[3].id, True),
    ]
