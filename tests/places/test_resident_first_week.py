"""A resident's first week with only the contract (issue 18): sign in, bind the phone (the answer's
tokens carry the household), see when and where to drop, look up three items, see the passbook and
the compost to collect — each step with the resident's own tokens, refreshed as the mini-program would."""

from __future__ import annotations

import uuid

from tests.field import cid, payload, scan, setup_field, yesterday_at
from tests.support import auth


def test_a_residents_first_week(client, world, wechat_state):
    household = world.households[5]
    c = world.community.id
    f = setup_field(client, world)

    signed_in = client.post("/api/v1/auth/wechat/login", json={"code": f"code-{uuid.uuid4().hex[:8]}"}).json()
    assert signed_in["expires_in"] > 0 and signed_in["user"]["household_ids"] == []
    bound = client.post("/api/v1/auth/wechat/phone", json={"code": f"phone-{world.phones[household.id]}", "refresh_token": signed_in["refresh_token"]},
                        headers=auth(signed_in["access_token"]))
    assert bound.status_code == 200 and bound.json()["matched"], bound.text
    tokens = bound.json()["tokens"]
    me = auth(tokens["access_token"])

    community = client.get(f"/api/v1/communities/{c}", headers=me)
    windows = client.get(f"/api/v1/communities/{c}/drop-windows", headers=me)
    stations = client.get(f"/api/v1/communities/{c}/stations", headers=me)
    rules = client.get(f"/api/v1/communities/{c}/points-rules/current", headers=me)
    assert [r.status_code for r in (community, windows, stations, rules)] == [200, 200, 200, 200]
    assert len(windows.json()["items"]) == 2 and stations.json()["items"][0]["name"] == "3号楼东侧"

    groups = {q: client.get(f"/api/v1/communities/{c}/guide", params={"q": q}, headers=me).json()["items"][0]["local_name"]
              for q in ("大骨头", "dianchi", "niunaihe")}
    assert groups["大骨头"] == "其他垃圾" and groups["niunaihe"] == "可回收物"

    # During the week: a volunteer scans the household, a compost keeper shares out a harvest.
    assert client.post(f"/api/v1/communities/{c}/checkins", json=scan(f["station_id"], payload(world, 5), yesterday_at(7, 30)), headers=world.h("volunteer")).status_code == 201
    site = client.post(f"/api/v1/communities/{c}/compost-sites", json={"name": "南门堆肥点", "address": "南门自行车棚旁"}, headers=world.h("compost_keeper")).json()
    bin_ = client.post(f"/api/v1/compost-sites/{site['id']}/bins", json={"name": "1号箱", "method": "box", "capacity_l": 200}, headers=world.h("compost_keeper")).json()
    assert client.post(f"/api/v1/compost-bins/{bin_['id']}/drops", json={"client_id": cid(), "payload": payload(world, 5), "weight_g": 2000}, headers=world.h("volunteer")).status_code == 201
    for step in ("close", "ready"):
        client.post(f"/api/v1/compost-bins/{bin_['id']}/{step}", headers=world.h("compost_keeper"))
    assert client.post(f"/api/v1/compost-bins/{bin_['id']}/harvest", json={"compost_g": 600}, headers=world.h("compost_keeper")).status_code == 201

    tokens = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).json()  # a new day, a new pair
    me = auth(tokens["access_token"])
    passbook = client.get(f"/api/v1/households/{household.id}/passbook", headers=me).json()
    assert passbook["unit"] == "积分" and passbook["balance"] == 10 + 20  # the check-in, and 2 kg of compost
    [claim] = client.get(f"/api/v1/households/{household.id}/compost-claims", headers=me).json()["items"]
    assert (claim["site_name"], claim["site_address"], claim["share_g"]) == ("南门堆肥点", "南门自行车棚旁", 600)
