"""The rewards catalogue: managers keep it, residents and clerks see what is available now."""

from __future__ import annotations

from datetime import timedelta

from app.core.db import utcnow
from tests.rewards.helpers import add_item


def test_managers_keep_the_catalogue_residents_see_what_is_available(client, world):
    now = utcnow()
    bag = add_item(world, name="环保袋", price_points=30, stock=10, limit_per_household=2, limit_period="month", picture_url="https://img.example/bag.jpg")
    repair = add_item(world, name="乐修匠上门维修", kind="service", price_points=200, stock=None)
    later = add_item(world, name="春节对联", available_from=(now + timedelta(days=30)).isoformat())
    gone = add_item(world, name="旧活动奖品", available_until=(now - timedelta(days=1)).isoformat(), available_from=(now - timedelta(days=9)).isoformat())
    empty = add_item(world, name="肥皂", stock=0)
    assert repair["stock"] is None and repair["available_now"] and repair["kind"] == "service"
    assert bag["limit_per_household"] == 2 and bag["picture_url"].endswith("bag.jpg")

    for who in ("resident", "clerk", "volunteer"):
        r = client.get(f"/api/v1/communities/{world.community.id}/rewards", headers=world.h(who))
        assert r.status_code == 200, r.text
        assert {i["id"] for i in r.json()["items"]} == {bag["id"], repair["id"]}, who
    everything = client.get(f"/api/v1/communities/{world.community.id}/rewards", params={"include_unavailable": True}, headers=world.h("committee")).json()
    assert {i["id"] for i in everything["items"]} >= {bag["id"], repair["id"], later["id"], gone["id"], empty["id"]}
    assert client.get(f"/api/v1/communities/{world.community.id}/rewards", params={"include_unavailable": True}, headers=world.h("resident")).status_code == 403

    r = client.patch(f"/api/v1/rewards/{bag['id']}", json={"price_points": 25, "stock": 3, "no_limit": True}, headers=world.h("committee"))
    assert r.status_code == 200, r.text
    assert (r.json()["price_points"], r.json()["stock"], r.json()["limit_per_household"]) == (25, 3, None)
    r = client.patch(f"/api/v1/rewards/{bag['id']}", json={"unlimited_stock": True}, headers=world.h("org_admin"))
    assert r.json()["stock"] is None
    assert client.patch(f"/api/v1/rewards/{bag['id']}", json={"price_points": 1}, headers=world.h("clerk")).status_code == 403
    assert client.delete(f"/api/v1/rewards/{bag['id']}", headers=world.h("committee")).status_code == 204
    assert client.get(f"/api/v1/rewards/{bag['id']}", headers=world.h("resident")).json()["active"] is False


def test_bad_items_are_refused_in_chinese_and_store_nothing(client, world):
    url = f"/api/v1/communities/{world.community.id}/rewards"
    for body in (
        {"name": "x", "price_points": 0},
        {"name": "x", "price_points": 5, "stock": -1},
        {"name": "", "price_points": 5},
        {"name": "x", "price_points": 5, "limit_period": "fortnight"},
        {"name": "x", "price_points": 5, "available_from": "2026-12-01T00:00:00+08:00", "available_until": "2026-11-01T00:00:00+08:00"},
    ):
        r = client.post(url, json=body, headers=world.h("committee"))
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["message"]
    r = client.post(url, json={"name": "x", "price_points": 0}, headers=world.h("committee") | {"Accept-Language": "en"})
    assert "price_points" in r.json()["error"]["message"]
    listed = client.get(url, params={"include_unavailable": True}, headers=world.h("committee")).json()["items"]
    assert listed == []
