"""CRUD of compounds, buildings and households by the roles that own them."""

from __future__ import annotations


def test_committee_builds_its_community(client, world):
    c = world.community.id
    r = client.post(f"/api/v1/communities/{c}/compounds", json={"name": "二期"}, headers=world.h("committee"))
    assert r.status_code == 201, r.text
    compound = r.json()["id"]
    b = client.post(f"/api/v1/compounds/{compound}/buildings", json={"name": "8号楼"}, headers=world.h("committee"))
    assert b.status_code == 201
    building = b.json()["id"]
    h = client.post(
        f"/api/v1/communities/{c}/households",
        json={"building_id": building, "unit": "2", "door_plate": "1203", "members": 4, "phone": "+86 138-1234-5678"},
        headers=world.h("committee"),
    )
    assert h.status_code == 201, h.text
    body = h.json()
    assert body["phone_masked"] == "138****5678" and "13812345678" not in h.text
    assert len(body["public_code"]) == 8 and body["status"] == "active"

    dup = client.post(
        f"/api/v1/communities/{c}/households",
        json={"building_id": building, "unit": "2", "door_plate": "1203"},
        headers=world.h("committee"),
    )
    assert dup.status_code == 409 and dup.json()["error"]["code"] == "duplicate"

    moved = client.patch(f"/api/v1/households/{body['id']}", json={"status": "moved_out", "members": 2}, headers=world.h("committee"))
    assert moved.status_code == 200 and moved.json()["status"] == "moved_out" and moved.json()["members"] == 2
    assert moved.json()["public_code"] == body["public_code"]  # the code on the door never changes

    # The building holds a household: it cannot be deleted; the audit log saw every change.
    assert client.delete(f"/api/v1/buildings/{building}", headers=world.h("committee")).status_code == 409
    audit = client.get(f"/api/v1/communities/{c}/audit", headers=world.h("committee")).json()["items"]
    actions = [a["action"] for a in audit]
    assert {"compound.create", "building.create", "household.create", "household.update"} <= set(actions)
    assert all(a["actor_user_id"] == world.users["committee"] for a in audit)
    assert "13812345678" not in str(audit)


def test_bad_phone_is_a_clear_error(client, world):
    r = client.post(
        f"/api/v1/communities/{world.community.id}/households",
        json={"building_id": world.buildings[0].id, "door_plate": "999", "phone": "12345"},
        headers=world.h("committee"),
    )
    assert r.status_code == 400 and r.json()["error"]["field"] == "phone" and "手机号" in r.json()["error"]["message"]


def test_validation_errors_name_the_field_in_both_languages(client, world):
    url = f"/api/v1/communities/{world.community.id}/households"
    body = {"building_id": world.buildings[0].id, "door_plate": "", "members": 0}
    zh = client.post(url, json=body, headers=world.h("committee"))
    assert zh.status_code == 422
    err = zh.json()["error"]
    assert err["code"] == "validation_error" and err["field"] in {"door_plate", "members"}
    assert any("\u4e00" <= ch <= "\u9fff" for ch in err["message"])
    en = client.post(url, json=body, headers=world.h("committee", **{"Accept-Language": "en-US,en;q=0.9"}))
    assert en.json()["error"]["message"].isascii()


def test_households_page_by_cursor_and_search_by_door_plate(client, world):
    c = world.community.id
    seen, cursor = [], None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = client.get(f"/api/v1/communities/{c}/households", params=params, headers=world.h("volunteer")).json()
        seen += [h["id"] for h in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == sorted(h.id for h in world.households)
    found = client.get(f"/api/v1/communities/{c}/households", params={"q": "2"}, headers=world.h("committee")).json()
    assert {h["door_plate"] for h in found["items"]} == {"201"}
    assert len(found["items"]) == 2  # 201 in each building
    assert client.get(f"/api/v1/communities/{c}/households", params={"cursor": "!!bad"}, headers=world.h("committee")).status_code == 400
    assert client.get(f"/api/v1/communities/{c}/households", params={"q": "%"}, headers=world.h("committee")).json()["items"] == []


def test_volunteers_read_but_do_not_write(client, world):
    c = world.community.id
    assert client.get(f"/api/v1/communities/{c}/compounds", headers=world.h("volunteer")).status_code == 200
    r = client.post(f"/api/v1/communities/{c}/compounds", json={"name": "三期"}, headers=world.h("volunteer"))
    assert r.status_code == 403
    assert client.patch(f"/api/v1/households/{world.households[0].id}", json={"members": 9}, headers=world.h("volunteer")).status_code == 403


def test_residents_see_only_their_household(client, world):
    mine, other = world.households[0].id, world.households[1].id
    assert client.get(f"/api/v1/households/{mine}", headers=world.h("resident")).status_code == 200
    assert client.get(f"/api/v1/households/{other}", headers=world.h("resident")).status_code == 403
    assert client.get(f"/api/v1/households/{mine}/qr?format=svg", headers=world.h("resident")).status_code == 200


def test_platform_admin_creates_streets_and_communities(client, world):
    s = client.post("/api/v1/streets", json={"city": "上海市", "district": "长宁区", "name": f"新华路街道{world.street.id}"}, headers=world.h("platform_admin"))
    assert s.status_code == 201
    c = client.post("/api/v1/communities", json={"name": "新社区", "street_id": s.json()["id"], "organisation_id": world.organisation.id}, headers=world.h("platform_admin"))
    assert c.status_code == 201
    # The organisation's admin now sees the new community; the committee of another does not.
    listed = client.get("/api/v1/communities", headers=world.h("org_admin")).json()["items"]
    assert c.json()["id"] in {x["id"] for x in listed}
    assert c.json()["id"] not in {x["id"] for x in client.get("/api/v1/communities", headers=world.h("committee")).json()["items"]}
    bad_tz = client.patch(f"/api/v1/communities/{c.json()['id']}", json={"timezone": "Mars/Base"}, headers=world.h("platform_admin"))
    assert bad_tz.status_code == 400 and bad_tz.json()["error"]["field"] == "timezone"
    assert client.post("/api/v1/streets", json={"city": "a", "district": "b", "name": "c"}, headers=world.h("committee")).status_code == 403
