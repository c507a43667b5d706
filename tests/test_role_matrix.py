"""Who may call each route, read from its signature, against what the API answers.

Every route declares its permission (an `app.identity.auth.Permission` in its dependant, through a
type from its domain's auth.py) unless it is listed in UNSCOPED with the reason; a new route that
declares none fails here. Then, through the HTTP API: every role of a foreign community is refused
(403/404) on this community's objects, and in its own community each role gets exactly what the
route declares: refused when the permission does not admit it, let through when it does.
"""

from __future__ import annotations

import inspect
import re
import uuid
from datetime import timedelta

import pytest
from fastapi.routing import iter_route_contexts

from app.identity.auth import HouseholdMember, Permission
from app.main import app
from tests.schema_bodies import request_body

# (method, path) → why a foreign role may legitimately succeed here (such a route may declare no permission)
UNSCOPED = {
    ("POST", "/api/v1/auth/wechat/login"): "sign-in",
    ("POST", "/api/v1/auth/wechat/phone"): "binds the caller's own phone",
    ("POST", "/api/v1/auth/password/login"): "sign-in",
    ("POST", "/api/v1/auth/refresh"): "token rotation",
    ("POST", "/api/v1/auth/logout"): "token revocation",
    ("GET", "/api/v1/me"): "the caller's own profile",
    ("GET", "/api/v1/me/data"): "the caller's own personal data",
    ("POST", "/api/v1/me/close"): "closes the caller's own account (staff accounts are refused)",
    ("GET", "/api/v1/me/subscriptions"): "the caller's own reminder subscriptions",
    ("POST", "/api/v1/me/subscriptions"): "records the caller's own subscribe-message answers",
    ("POST", "/api/v1/staff"): "creates a bare account; roles are granted per community",
    ("GET", "/api/v1/communities"): "lists only communities the caller may see (asserted below)",
    ("GET", "/api/v1/streets"): "lists only streets the caller may see (asserted below)",
}

# Roles a route's permission admits that its service still refuses here, because of the row or the
# body: (method, path) → (those roles, why).
REFUSED_BY_THE_DATA = {
    ("POST", "/api/v1/shifts/{shift_id}/sign-out"): (
        {"volunteer", "clerk", "compost_keeper"}, "the shift is the supervisor's: closing another's takes a supervisor or manager",
    ),
}

# Optional fields a valid body for these operations needs (the generator fills required ones only).
BODY_EXTRAS = {
    ("POST", "/api/v1/grants"): lambda ids: {"community_id": ids["community_id"]},
    ("POST", "/api/v1/grants/revoke"): lambda ids: {"community_id": ids["community_id"]},
    ("POST", "/api/v1/communities/{community_id}/drop-windows"): lambda ids: {"end_time": "09:00:00"},
    ("POST", "/api/v1/communities/{community_id}/recycling-schedules"): lambda ids: {"rrule": "FREQ=WEEKLY", "end_time": "11:00:00"},
    ("POST", "/api/v1/communities/{community_id}/recycling-events"): lambda ids: {"end_time": "11:00:00"},
    ("POST", "/api/v1/recycling-events/{event_id}/weigh-ins"): lambda ids: {"walk_in": True, "weight_g": 100},
    ("POST", "/api/v1/recycling-events/{event_id}/destinations"): lambda ids: {"quantity_g": 1000},
}

FOREIGN_ROLES = ["resident", "volunteer", "supervisor", "clerk", "compost_keeper", "committee", "org_admin", "street_viewer"]


def _operations(spec):
    for path, item in spec["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method, op in item.items():
            yield method.upper(), path, op


def _declared_routes():
    """(method, path, the route's permission or None, the module of its endpoint) of every API route."""
    for route in iter_route_contexts(app.routes):
        if not (route.path or "").startswith("/api/"):
            continue
        found = [d.call for d in _dependencies(route.dependant) if isinstance(d.call, Permission)]
        assert len(found) <= 1, f"{route.path}: {len(found)} permissions"
        for method in route.methods:
            yield method, route.path, (found[0] if found else None), route.endpoint.__module__


def _dependencies(dependant):
    for d in dependant.dependencies:
        yield d
        yield from _dependencies(d)


def test_every_route_declares_who_may_call_it():
    routes = list(_declared_routes())
    undeclared = [
        f"{method} {path}" for method, path, permission, _ in routes
        if permission is None and (method, path) not in UNSCOPED
    ]
    assert not undeclared, "routes that declare no permission (see app/identity/auth.py):\n" + "\n".join(undeclared)
    # A permission finds its community from a path parameter: one the path lacks would be taken as
    # a parameter of its own, never sent by a client.
    unplaced = [
        f"{method} {path}: {name}" for method, path, permission, _ in routes if permission is not None
        for name in inspect.signature(permission).parameters if name not in ("session", "principal") and f"{{{name}}}" not in path
    ]
    assert not unplaced, "permissions reading a parameter their path lacks:\n" + "\n".join(unplaced)
    assert sum(1 for r in routes if r[2] is not None) >= 100


def _ids(world) -> dict[str, int]:
    return {
        "community_id": world.community.id,
        "compound_id": world.compound.id,
        "building_id": world.buildings[0].id,
        "household_id": world.households[0].id,
        "organisation_id": world.organisation.id,
        "street_id": world.street.id,
        "user_id": world.users["committee"],
    }


def _payload(world) -> str:
    from sqlmodel import Session

    from app.places.service import qr_payload

    with Session(world.engine) as s:
        return qr_payload(s.merge(world.households[0]))


def _fill(path: str, ids: dict[str, int | str]) -> str:
    def sub(m):
        name = m.group(1)
        if name == "kind":
            return "svg"
        if name in ids:
            return str(ids[name])
        return str(ids.get("community_id"))

    return re.sub(r"\{(\w+)\}", sub, path)


def test_foreign_roles_are_refused_everywhere(client, world, other_world):
    spec = client.get("/openapi.json").json()
    ids = _ids(world)
    # Bodies a world insider could send successfully: real ids, a real role, a genuine door-plate code.
    ids_for_body = ids | {"user_id": other_world.users["volunteer"], "role": "volunteer", "payload": _payload(world)}
    failures = []
    checked = 0
    for method, path, op in _operations(spec):
        if (method, path) in UNSCOPED:
            continue
        url = _fill(path, ids)
        body = request_body(spec, op, ids_for_body)
        if body and (method, path) in BODY_EXTRAS:
            body = (body[0], body[1] | BODY_EXTRAS[(method, path)](ids))
        for role in FOREIGN_ROLES:
            kwargs = {}
            if body:
                kwargs[body[0]] = body[1]
            r = client.request(method, url, headers=other_world.h(role), **kwargs)
            checked += 1
            if r.status_code not in (403, 404):
                failures.append(f"{method} {path} as foreign {role}: {r.status_code} {r.text[:120]}")
    assert not failures, "\n".join(failures)
    assert checked > 50


OWN_ROLES = [*FOREIGN_ROLES, "platform_admin"]


def _objects(client, world) -> dict[str, int | str]:
    """One of each row the declared routes name, made through the API by the community's own people."""
    from tests.field import local_day

    c, h, today = world.community.id, world.households[0].id, local_day()

    def made(url: str, role: str, **kwargs) -> int:
        r = client.post(f"/api/v1{url}", headers=world.h(role), **kwargs)
        assert r.status_code == 201, f"{url}: {r.status_code} {r.text}"
        return r.json()["id"]

    def key() -> str:
        return uuid.uuid4().hex

    entry_id = made(f"/households/{h}/adjustments", "committee", json={"points": 500, "reason": "角色矩阵", "idempotency_key": key()})
    item_id = made(f"/communities/{c}/rewards", "committee", json={"name": "环保袋", "price_points": 10, "stock": 50})
    challenge = {"title": "减塑打卡", "days_required": 3, "starts_on": (today - timedelta(days=5)).isoformat(),
                 "ends_on": (today + timedelta(days=30)).isoformat()}
    station_id = made(f"/communities/{c}/stations", "committee", json={"name": "矩阵投放点"})
    made(f"/communities/{c}/drop-windows", "committee", json={"name": "全天", "start_time": "00:00", "end_time": "23:59:59"})
    scanned = client.post(f"/api/v1/communities/{c}/checkins", headers=world.h("volunteer"),
                          json={"client_id": key(), "payload": _payload(world), "station_id": station_id, "result": "correct"})
    assert scanned.status_code == 201, scanned.text
    # Compost: a keeper's site and bin, a volunteer's drop of the household's waste, the bin harvested
    # by the keeper (the household's claim).
    site_id = made(f"/communities/{c}/compost-sites", "compost_keeper", json={"name": "矩阵堆肥点"})
    bin_id = made(f"/compost-sites/{site_id}/bins", "compost_keeper", json={"name": "1号箱", "method": "box", "capacity_l": 200})
    drop_id = made(f"/compost-bins/{bin_id}/drops", "volunteer", json={"client_id": key(), "payload": _payload(world), "weight_g": 1500})
    for step in ("close", "ready"):
        assert client.post(f"/api/v1/compost-bins/{bin_id}/{step}", headers=world.h("compost_keeper")).status_code == 200
    harvested = client.post(f"/api/v1/compost-bins/{bin_id}/harvest", headers=world.h("compost_keeper"), json={"compost_g": 500})
    assert harvested.status_code == 201, harvested.text
    # Recycling days: the committee's rate, schedule and today's event, a clerk's weigh-in of the
    # household (so its members took part in the event).
    code = "matrix_paper"
    rate = client.put(f"/api/v1/communities/{c}/recycling-rates/{code}", headers=world.h("committee"),
                      json={"name": "废纸", "unit": "kg", "points": 5})
    assert rate.status_code == 201, rate.text
    schedule_id = made(f"/communities/{c}/recycling-schedules", "committee", json={
        "rrule": "FREQ=WEEKLY", "starts_on": (today + timedelta(days=1)).isoformat(), "start_time": "09:00", "end_time": "11:00", "place": "北门"})
    event_id = made(f"/communities/{c}/recycling-events", "committee", json={
        "occurs_on": today.isoformat(), "start_time": "00:00", "end_time": "23:59", "place": "社区广场"})
    weigh_in_id = made(f"/recycling-events/{event_id}/weigh-ins", "clerk",
                       json={"client_id": key(), "payload": _payload(world), "category": code, "weight_g": 2000})
    # A network coordinated by the world's organisation, which is also its partner.
    network_id = made("/networks", "platform_admin", json={"name": f"矩阵网络-{key()}", "coordinator_organisation_id": world.organisation.id})
    partner = client.post(f"/api/v1/networks/{network_id}/partners", headers=world.h("platform_admin"),
                          json={"organisation_id": world.organisation.id})
    assert partner.status_code == 200, partner.text
    return {
        "network_id": network_id,
        "measure": "activities",
        "site_id": site_id,
        "bin_id": bin_id,
        "drop_id": drop_id,
        "claim_id": harvested.json()["claims"][0]["id"],
        "code": code,
        "schedule_id": schedule_id,
        "event_id": event_id,
        "weigh_in_id": weigh_in_id,
        "station_id": station_id,
        "window_id": made(f"/communities/{c}/drop-windows", "committee", json={"name": "夜", "start_time": "00:00", "end_time": "00:01", "weekdays": "7", "active": False}),
        "checkin_id": scanned.json()["checkin_id"],
        "activity_id": made(f"/communities/{c}/activities", "committee",
                            json={"client_id": key(), "kind": "lecture", "title": "大讲堂", "held_on": today.isoformat(), "participants": 30}),
        "challenge_id": made(f"/communities/{c}/challenges", "committee", json=challenge),
        "entry_id": entry_id,
        "import_id": made(f"/communities/{c}/roster-imports", "committee", files={"file": ("roster.csv", b"building,door_plate\n", "text/csv")}),
        "item_id": item_id,
        "name": "大骨头",
        "media_item_id": made(f"/communities/{c}/media-items", "committee",
                              json={"client_id": key(), "title": "减废故事", "channel": "视频号", "published_on": today.isoformat(), "reads": 10}),
        "redemption_id": made(f"/households/{h}/redemptions", "resident", json={"item_id": item_id, "idempotency_key": key()}),
        "pin_reset_id": made(f"/households/{h}/pin-resets", "committee", json={"pin": "914702", "idempotency_key": key()}),
        "shift_id": made(f"/communities/{c}/shifts", "supervisor", json={"client_id": key()}),
        "team_id": made(f"/communities/{c}/volunteer-teams", "committee", json={"name": "盯桶侠"}),
        "voucher_id": made(f"/communities/{c}/vouchers", "committee", json={"points": 40, "memo": "回收日", "idempotency_key": key()}),
    }


def _refused_as(r, status: int) -> bool:
    """Answered the way a permission refuses: 403 "forbidden", or 404 "not_found" (a household's
    members only). A refusal about the data has a code of its own (consent_required...)."""
    return r.status_code == status and r.json()["error"]["code"] == ("forbidden" if status == 403 else "not_found")


def test_each_role_gets_what_its_route_declares(client, world):
    """In its own community, a role the route's permission does not admit is refused (403; 404 where
    only the household's members act), and a role it admits is not refused as "forbidden" (its answer
    may still be a 404, 409 or 422 about the data, or a refusal with a code of its own)."""
    spec = client.get("/openapi.json").json()
    operations = {(m, p): op for m, p, op in _operations(spec)}
    ids = _ids(world) | _objects(client, world)
    # Grants go to a bystander: a role granted or revoked ends the user's access tokens, and the
    # world's users go on asking with theirs.
    ids_for_body = ids | {"user_id": world.bystander(), "role": "volunteer", "payload": _payload(world)}
    failures = []
    checked = 0
    for method, path, permission, _ in _declared_routes():
        if permission is None:
            continue
        missing = set(re.findall(r"\{(\w+)\}", path)) - set(ids) - {"kind"}
        assert not missing, f"{method} {path}: make a {missing} in _objects"
        body = request_body(spec, operations[(method, path)], ids_for_body)
        if body and (method, path) in BODY_EXTRAS:
            body = (body[0], body[1] | BODY_EXTRAS[(method, path)](ids))
        refusal = 404 if isinstance(permission, HouseholdMember) else 403
        refused_by_data, _ = REFUSED_BY_THE_DATA.get((method, path), (set(), ""))
        admitted = {r.value for r in permission.admitted}
        for role in OWN_ROLES:
            r = client.request(method, _fill(path, ids), headers=world.h(role), **({body[0]: body[1]} if body else {}))
            checked += 1
            if role not in admitted and r.status_code != refusal:
                failures.append(f"{method} {path} as {role} (not declared): {r.status_code} {r.text[:120]}")
            elif role in admitted and role not in refused_by_data and _refused_as(r, refusal):
                failures.append(f"{method} {path} as {role} (declared): {r.status_code} {r.text[:120]}")
    assert not failures, "\n".join(failures)
    assert checked >= 900


def test_unscoped_lists_show_nothing_foreign(client, world, other_world):
    for role in FOREIGN_ROLES:
        communities = client.get("/api/v1/communities", headers=other_world.h(role)).json()["items"]
        assert world.community.id not in {c["id"] for c in communities}, role
        streets = client.get("/api/v1/streets", headers=other_world.h(role)).json()["items"]
        assert world.street.id not in {s["id"] for s in streets}, role


def test_every_api_route_demands_a_token(client, world):
    spec = client.get("/openapi.json").json()
    open_routes = {("POST", p) for p in ("/api/v1/auth/wechat/login", "/api/v1/auth/password/login", "/api/v1/auth/refresh", "/api/v1/auth/logout")}
    for method, path, _ in _operations(spec):
        if (method, path) in open_routes:
            continue
        r = client.request(method, _fill(path, _ids(world)))
        assert r.status_code == 401, f"{method} {path}: {r.status_code}"


@pytest.mark.parametrize("role", ["committee", "org_admin"])
def test_managers_reach_their_own_community(client, world, role):
    r = client.get(f"/api/v1/communities/{world.community.id}/households", headers=world.h(role))
    assert r.status_code == 200 and len(r.json()["items"]) == len(world.households)


# What a community notice board shows: its community's residents read these (issue 18).
NOTICE_BOARD = {
    ("GET", "/api/v1/communities/{community_id}"),
    ("GET", "/api/v1/communities/{community_id}/stations"),
    ("GET", "/api/v1/communities/{community_id}/drop-windows"),
    ("GET", "/api/v1/communities/{community_id}/compost-sites"),
    ("GET", "/api/v1/communities/{community_id}/compost-bins"),
    ("GET", "/api/v1/compost-bins/{bin_id}"),
    ("GET", "/api/v1/communities/{community_id}/points-rules/current"),
    ("GET", "/api/v1/communities/{community_id}/recycling-rates"),
    ("GET", "/api/v1/communities/{community_id}/recycling-events"),
    ("GET", "/api/v1/communities/{community_id}/rewards"),
    ("GET", "/api/v1/communities/{community_id}/guide/reasons"),
    ("GET", "/api/v1/communities/{community_id}/guide/items/{name}"),
}


def test_residents_read_their_notice_board_and_only_their_own_household(client, world, other_world):
    declared = {(m, p): perm for m, p, perm, _ in _declared_routes()}
    assert all(declared[op].admits_residents for op in NOTICE_BOARD), [op for op in NOTICE_BOARD if not declared[op].admits_residents]
    ids = _ids(world) | _objects(client, world)
    for method, path in sorted(NOTICE_BOARD):
        mine = client.request(method, _fill(path, ids), headers=world.h("resident"))
        assert mine.status_code == 200, f"{path}: {mine.status_code} {mine.text[:120]}"
        theirs = client.request(method, _fill(path, ids), headers=other_world.h("resident"))
        assert theirs.status_code == 403 and theirs.json()["error"]["code"] == "forbidden", path
    # Another household of the same community: said plainly, not "not allowed in this community".
    neighbour = world.households[1].id
    for path in ("/households/{h}", "/households/{h}/passbook", "/households/{h}/compost-claims", "/households/{h}/checkins"):
        r = client.get("/api/v1" + path.format(h=neighbour), headers=world.h("resident"))
        assert r.status_code == 403 and r.json()["error"]["code"] == "not_your_household", path
        assert r.json()["error"]["message"] == "只能查看自己家的住户信息"
