"""The sorting guide (垃圾分类指南) through the API: search by characters, pinyin, initials and with
typos; each city's names; a community's own entries (audited); searches that found nothing, counted
for the committee; wrong-sorting reasons linked to entries."""

from __future__ import annotations

import csv
from urllib.parse import quote

from sqlalchemy import text

from app.guide.service import DATA
from tests.field import payload, scan, setup_field, yesterday_at


def _search(client, world, q, role="resident", **params):
    r = client.get(f"/api/v1/communities/{world.community.id}/guide", params={"q": q, **params}, headers=world.h(role))
    assert r.status_code == 200, r.text
    return r.json()


def _first(client, world, q):
    body = _search(client, world, q)
    assert body["found"] and body["items"], (q, body)
    return body["items"][0]


def test_the_shipped_guide_is_large_and_well_formed():
    with DATA.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) >= 1500
    assert len({r["name"] for r in rows}) == len(rows)
    assert {r["group"] for r in rows} == {"kitchen", "recyclable", "hazardous", "other"}
    assert all(r["instruction"].strip() and r["name"].strip() for r in rows)


def test_search_by_characters_pinyin_initials_and_with_typos(client, world):
    for q in ("大骨头", "dagutou", "DaGuTou", "dgt", "大谷头", "dagutuo", " 大骨头 ", "ｄａｇｕｔｏｕ"):
        item = _first(client, world, q)
        assert item["name"] == "大骨头", q
        assert item["group"] == "other"
    assert _first(client, world, "鸡骨头")["group"] == "kitchen"
    assert _first(client, world, "niunaihe")["name"] == "牛奶盒"
    assert _first(client, world, "牛奶盒")["group"] == "recyclable"
    assert _first(client, world, "充电电池")["group"] == "hazardous"
    assert _first(client, world, "五号电池")["group"] == "other"  # ordinary dry cells carry no mercury
    assert _first(client, world, "一个烂苹果")["name"] == "烂苹果"
    assert _first(client, world, "马铃薯")["name"] == "土豆"  # a synonym
    tea = _first(client, world, "奶茶")
    assert "下水道" in tea["instruction"] and "珍珠" in tea["instruction"]
    several = _search(client, world, "电池", limit=5)
    assert len(several["items"]) == 5 and {i["group"] for i in several["items"]} >= {"hazardous", "other"}


def test_each_city_names_the_groups_its_own_way(client, world, other_world, engine):
    bone = _first(client, world, "大骨头")
    assert (bone["group_name"], bone["local_name"]) == ("其他垃圾", "其他垃圾")  # the world's street is in 苏州市
    assert bone["names_by_city"]["上海"] == "干垃圾" and bone["names_by_city"]["北京"] == "其他垃圾"
    with engine.begin() as conn:
        conn.execute(text("UPDATE street SET city = '上海市' WHERE id = :id"), {"id": other_world.street.id})
    shanghai = _search(client, other_world, "大骨头")["items"][0]
    assert shanghai["local_name"] == "干垃圾"
    assert _search(client, other_world, "西瓜皮")["items"][0]["local_name"] == "湿垃圾"


def test_searches_that_find_nothing_are_counted_for_the_committee(client, world):
    for q in ("量子计算机", "量子计算机", "liangzijisuanji", "大骨头"):
        _search(client, world, q)
    assert _search(client, world, "量子计算机")["found"] is False
    misses = client.get(f"/api/v1/communities/{world.community.id}/guide/misses", headers=world.h("committee"))
    assert misses.status_code == 200, misses.text
    got = [(m["query"], m["count"]) for m in misses.json()["items"]]
    assert got[0] == ("量子计算机", 3) and ("liangzijisuanji", 1) in got
    assert "大骨头" not in {q for q, _ in got}
    assert client.get(f"/api/v1/communities/{world.community.id}/guide/misses", headers=world.h("resident")).status_code == 403


def test_a_community_overrides_and_adds_items_for_its_own_bins(client, world, other_world, engine):
    c = world.community.id
    url = f"/api/v1/communities/{c}/guide/items/{quote('玻璃瓶')}"
    body = {"group": "other", "synonyms": ["酒瓶子"], "instruction": "本小区玻璃由物业单独收集：放到北门玻璃专用箱"}
    assert client.put(url, json=body, headers=world.h("volunteer")).status_code == 403
    r = client.put(url, json=body, headers=world.h("committee"))
    assert r.status_code == 200, r.text
    assert (r.json()["group"], r.json()["source"]) == ("other", "community")
    item = _first(client, world, "玻璃瓶")
    assert (item["source"], item["instruction"]) == ("community", body["instruction"])
    assert _first(client, world, "酒瓶子")["name"] == "玻璃瓶"
    assert _search(client, other_world, "玻璃瓶")["items"][0]["source"] == "guide"  # only this community
    added = client.put(f"/api/v1/communities/{c}/guide/items/{quote('旧沙发')}",
                       json={"group": "recyclable", "instruction": "大件垃圾：周六上午预约物业上门"}, headers=world.h("committee"))
    assert added.status_code == 200, added.text
    assert _first(client, world, "jiushafa")["name"] == "旧沙发"
    own = client.get(f"/api/v1/communities/{c}/guide/own-items", headers=world.h("resident")).json()["items"]
    assert [e["name"] for e in own] == ["旧沙发", "玻璃瓶"]
    with engine.connect() as conn:
        actions = [a for (a,) in conn.execute(text("SELECT action FROM audit_log WHERE community_id = :c AND action LIKE 'guide.%' ORDER BY id"), {"c": c})]
    assert actions == ["guide.override", "guide.add"]
    assert client.delete(url, headers=world.h("committee")).status_code == 204
    assert _first(client, world, "玻璃瓶")["source"] == "guide" and _first(client, world, "玻璃瓶")["group"] == "recyclable"
    assert client.delete(url, headers=world.h("committee")).json()["error"]["code"] == "not_overridden"
    r = client.get(f"/api/v1/communities/{c}/guide/items/{quote('不存在的东西')}", headers=world.h("resident"))
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_in_guide"
    bad = client.put(url, json={"group": "compost", "instruction": "x"}, headers=world.h("committee"))
    assert bad.status_code == 422


def test_wrong_sorting_reasons_link_to_guide_entries(client, world):
    f = setup_field(client, world)
    r = client.post(f"/api/v1/communities/{world.community.id}/checkins",
                    json=scan(f["station_id"], payload(world, 1), yesterday_at(7, 30), result="incorrect", reasons=["mixed"]),
                    headers=world.h("volunteer"))
    assert r.status_code == 201, r.text
    reasons = client.get(f"/api/v1/communities/{world.community.id}/guide/reasons", headers=world.h("resident"))
    assert reasons.status_code == 200, reasons.text
    first = reasons.json()["items"][0]
    assert (first["reason"], first["recent_count"]) == ("mixed", 1)
    assert {"大骨头", "贝壳"} <= {i["name"] for i in first["items"]}
    bag = next(x for x in reasons.json()["items"] if x["reason"] == "bag_not_removed")
    assert "破袋" in bag["tip"] and bag["items"][0]["name"] == "塑料袋" and bag["items"][0]["group"] == "other"


def test_residents_of_other_communities_cannot_search_here(client, world, other_world):
    r = client.get(f"/api/v1/communities/{world.community.id}/guide", params={"q": "大骨头"}, headers=other_world.h("resident"))
    assert r.status_code == 403
