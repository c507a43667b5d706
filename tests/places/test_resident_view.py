"""A resident's view of their programme (issue 18): the notice board of their own community, where to
collect their compost, their passbook in 积分 — and nothing of other households."""

from __future__ import annotations

from tests.field import cid, payload, setup_field


def test_a_resident_sees_when_and_where_to_drop_and_what_earns_what(client, world):
    f = setup_field(client, world)
    c, h = world.community.id, world.h("resident")
    community = client.get(f"/api/v1/communities/{c}", headers=h)
    assert community.status_code == 200 and community.json()["name"] == world.community.name
    windows = client.get(f"/api/v1/communities/{c}/drop-windows", headers=h)
    assert windows.status_code == 200
    assert sorted((w["name"], w["start_time"][:5], w["end_time"][:5]) for w in windows.json()["items"]) == [("早间", "07:00", "09:00"), ("晚间", "18:00", "21:00")]
    stations = client.get(f"/api/v1/communities/{c}/stations", headers=h)
    assert stations.status_code == 200 and [s["id"] for s in stations.json()["items"]] == [f["station_id"]]
    rules = client.get(f"/api/v1/communities/{c}/points-rules/current", headers=h)
    assert rules.status_code == 200 and rules.json()["checkin_correct"] == 10
    # The full history of the rules and the check-ins stay with the staff.
    assert client.get(f"/api/v1/communities/{c}/checkins", headers=h).status_code == 403


def test_a_resident_is_told_where_to_collect_their_compost(client, world):
    c = world.community.id
    site = client.post(f"/api/v1/communities/{c}/compost-sites", json={"name": "东门堆肥点", "address": "东门花园北侧"}, headers=world.h("compost_keeper")).json()
    bin_ = client.post(f"/api/v1/compost-sites/{site['id']}/bins", json={"name": "2号箱", "method": "worm", "capacity_l": 200}, headers=world.h("compost_keeper")).json()
    drop = client.post(f"/api/v1/compost-bins/{bin_['id']}/drops", json={"client_id": cid(), "payload": payload(world, 0), "weight_g": 3000}, headers=world.h("volunteer"))
    assert drop.status_code == 201, drop.text
    h = world.h("resident")
    assert [s["name"] for s in client.get(f"/api/v1/communities/{c}/compost-sites", headers=h).json()["items"]] == ["东门堆肥点"]
    assert client.get(f"/api/v1/compost-bins/{bin_['id']}", headers=h).json()["state"] == "accepting"
    assert client.get(f"/api/v1/compost-bins/{bin_['id']}/drops", headers=h).status_code == 403  # who dropped what: staff only
    for step in ("close", "ready"):
        assert client.post(f"/api/v1/compost-bins/{bin_['id']}/{step}", headers=world.h("compost_keeper")).status_code == 200
    assert client.post(f"/api/v1/compost-bins/{bin_['id']}/harvest", json={"compost_g": 900}, headers=world.h("compost_keeper")).status_code == 201
    claims = client.get(f"/api/v1/households/{world.households[0].id}/compost-claims", headers=h)
    assert claims.status_code == 200, claims.text
    [claim] = claims.json()["items"]
    assert (claim["site_name"], claim["site_address"], claim["bin_name"], claim["share_g"]) == ("东门堆肥点", "东门花园北侧", "2号箱", 900)
    assert claim["collected_at"] is None


def test_the_passbook_carries_its_unit(client, world):
    r = client.get(f"/api/v1/households/{world.households[0].id}/passbook", headers=world.h("resident"))
    assert r.status_code == 200 and r.json()["unit"] == "积分" and r.json()["balance"] == 0
