"""Compost through the API: a bin's life, drops and points, readings, harvest shared as claims."""

from __future__ import annotations

import threading

from app.compost.service import share
from tests.field import balance, cid, payload


def _bin(client, world, method="box", **extra):
    c = world.community.id
    site = client.post(f"/api/v1/communities/{c}/compost-sites", json={"name": f"堆肥点{cid()[:6]}"}, headers=world.h("compost_keeper"))
    assert site.status_code == 201, site.text
    b = client.post(
        f"/api/v1/compost-sites/{site.json()['id']}/bins",
        json={"name": "1号箱", "method": method, "capacity_l": 200} | extra,
        headers=world.h("compost_keeper"),
    )
    assert b.status_code == 201, b.text
    return b.json()


def _drop(client, world, bin_id, index, grams, role="volunteer", **extra):
    body = {"client_id": cid(), "payload": payload(world, index), "weight_g": grams} | extra
    return client.post(f"/api/v1/compost-bins/{bin_id}/drops", json=body, headers=world.h(role))


def test_drops_earn_points_and_are_idempotent(client, world):
    b = _bin(client, world)
    r = _drop(client, world, b["id"], 1, 2300)
    assert r.status_code == 201, r.text
    assert r.json()["points"] == 23  # default 10 points per kg
    body = {"client_id": cid(), "payload": payload(world, 1), "weight_g": 800, "kind": "cooked"}
    first = client.post(f"/api/v1/compost-bins/{b['id']}/drops", json=body, headers=world.h("volunteer"))
    again = client.post(f"/api/v1/compost-bins/{b['id']}/drops", json=body, headers=world.h("volunteer"))
    assert first.status_code == 201 and again.status_code == 200
    assert again.json() == first.json()
    assert balance(client, world, 1) == 23 + 8
    bins = client.get(f"/api/v1/communities/{world.community.id}/compost-bins", headers=world.h("street_viewer")).json()["items"]
    assert bins[0]["fed_g"] == 3100 and bins[0]["state"] == "accepting"
    assert client.post(f"/api/v1/compost-bins/{b['id']}/drops", json=body | {"client_id": cid(), "weight_g": 0}, headers=world.h("volunteer")).status_code == 422


def test_bin_life_and_refused_drops(client, world):
    b = _bin(client, world, method="worm")
    bid = b["id"]
    assert client.post(f"/api/v1/compost-bins/{bid}/close", headers=world.h("volunteer")).status_code == 403
    closed = client.post(f"/api/v1/compost-bins/{bid}/close", headers=world.h("compost_keeper"))
    assert closed.status_code == 200 and closed.json()["state"] == "curing"
    assert closed.json()["ready_on"] is not None
    r = _drop(client, world, bid, 2, 500)
    assert r.status_code == 409 and r.json()["error"]["code"] == "bin_not_accepting"
    assert "腐熟中" in r.json()["error"]["message"]
    assert client.post(f"/api/v1/compost-bins/{bid}/harvest", json={"compost_g": 1000}, headers=world.h("compost_keeper")).status_code == 409
    assert client.post(f"/api/v1/compost-bins/{bid}/close", headers=world.h("compost_keeper")).status_code == 409
    assert client.post(f"/api/v1/compost-bins/{bid}/ready", headers=world.h("compost_keeper")).json()["state"] == "ready"
    h = client.post(f"/api/v1/compost-bins/{bid}/harvest", json={"compost_g": 1000}, headers=world.h("compost_keeper"))
    assert h.status_code == 201 and h.json()["claims"] == []
    again = client.post(f"/api/v1/compost-bins/{bid}/reopen", headers=world.h("compost_keeper")).json()
    assert again["state"] == "accepting" and again["cycle"] == 2 and again["fed_g"] == 0
    assert _drop(client, world, bid, 2, 500).status_code == 201


def test_harvest_shares_compost_in_proportion_and_claims_are_collected_once(client, world):
    b = _bin(client, world)
    bid = b["id"]
    for index, grams in [(1, 3000), (2, 1000), (1, 1000), (3, 1000)]:
        assert _drop(client, world, bid, index, grams).status_code == 201
    wrong = _drop(client, world, bid, 4, 5000)
    # A wrongly recorded drop is reversed: its points go back and it does not count in the share.
    rev = client.post(f"/api/v1/compost-drops/{wrong.json()['id']}/reverse", json={"reason": "称重有误"}, headers=world.h("compost_keeper"))
    assert rev.status_code == 200 and rev.json()["reversed"] is True
    assert balance(client, world, 4) == 0
    client.post(f"/api/v1/compost-bins/{bid}/close", headers=world.h("compost_keeper"))
    client.post(f"/api/v1/compost-bins/{bid}/ready", headers=world.h("compost_keeper"))
    h = client.post(f"/api/v1/compost-bins/{bid}/harvest", json={"compost_g": 1001}, headers=world.h("compost_keeper"))
    assert h.status_code == 201, h.text
    claims = {c["household_id"]: c for c in h.json()["claims"]}
    hh = world.households
    assert {k: v["share_g"] for k, v in claims.items()} == {hh[1].id: 667, hh[2].id: 167, hh[3].id: 167}
    assert sum(c["share_g"] for c in claims.values()) == 1001
    assert claims[hh[1].id]["fed_g"] == 4000

    mine = client.get(f"/api/v1/households/{hh[1].id}/compost-claims", headers=world.h("committee")).json()["items"]
    assert [c["share_g"] for c in mine] == [667]
    claim_id = claims[hh[1].id]["id"]
    url = f"/api/v1/compost-claims/{claim_id}/collect"
    answers = []

    def collect():
        answers.append(client.post(url, headers=world.h("compost_keeper")).status_code)

    threads = [threading.Thread(target=collect) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == [200, 409, 409]
    listed = client.get(f"/api/v1/compost-bins/{bid}/harvests", headers=world.h("committee")).json()["items"]
    assert [c["collected_at"] is not None for c in listed[0]["claims"]].count(True) == 1


def test_readings(client, world):
    bid = _bin(client, world)["id"]
    url = f"/api/v1/compost-bins/{bid}/readings"
    assert client.post(url, json={"client_id": cid()}, headers=world.h("compost_keeper")).status_code == 400
    body = {"client_id": cid(), "temperature_c": 55.5, "moisture_pct": 60, "smell": "earthy"}
    r = client.post(url, json=body, headers=world.h("compost_keeper"))
    assert r.status_code == 201 and r.json()["smell"] == "earthy"
    assert client.post(url, json=body, headers=world.h("compost_keeper")).json()["id"] == r.json()["id"]
    assert client.post(url, json={"client_id": cid(), "temperature_c": 200}, headers=world.h("compost_keeper")).status_code == 422
    assert client.post(url, json={"client_id": cid(), "notes": "翻堆"}, headers=world.h("resident")).status_code == 403
    items = client.get(url, headers=world.h("committee")).json()["items"]
    assert [i["temperature_c"] for i in items] == [55.5]


def test_daily_cap_limits_points_per_household_per_day(client, world):
    c = world.community.id
    r = client.post(f"/api/v1/communities/{c}/points-rules", json={"compost_per_kg": 10, "compost_per_drop": 2, "daily_cap": 30}, headers=world.h("committee"))
    assert r.status_code == 201
    bid = _bin(client, world)["id"]
    got = [_drop(client, world, bid, 5, 2000).json()["points"] for _ in range(3)]
    assert got == [22, 8, 0]
    assert balance(client, world, 5) == 30


def test_share_is_exact_and_proportional():
    assert share(10, {1: 1, 2: 1, 3: 1}) == {1: 4, 2: 3, 3: 3}
    assert share(0, {1: 5}) == {1: 0}
    assert share(7, {}) == {}
    parts = share(123_457, {i: i * 37 % 101 + 1 for i in range(1, 60)})
    assert sum(parts.values()) == 123_457
