"""Every route, with every role from a foreign community, is refused (403/404) on this community's objects.

A route that is not scoped to a community must be listed in UNSCOPED with the reason; a new route
that is neither refused nor listed fails this test.
"""

from __future__ import annotations

import re

import pytest

from tests.schema_bodies import request_body

# (method, path) → why a foreign role may legitimately succeed here
UNSCOPED = {
    ("POST", "/api/v1/auth/wechat/login"): "sign-in",
    ("POST", "/api/v1/auth/wechat/phone"): "binds the caller's own phone",
    ("POST", "/api/v1/auth/password/login"): "sign-in",
    ("POST", "/api/v1/auth/refresh"): "token rotation",
    ("POST", "/api/v1/auth/logout"): "token revocation",
    ("GET", "/api/v1/me"): "the caller's own profile",
    ("GET", "/api/v1/me/subscriptions"): "the caller's own reminder subscriptions",
    ("POST", "/api/v1/me/subscriptions"): "records the caller's own subscribe-message answers",
    ("POST", "/api/v1/staff"): "creates a bare account; roles are granted per community",
    ("GET", "/api/v1/communities"): "lists only communities the caller may see (asserted below)",
    ("GET", "/api/v1/streets"): "lists only streets the caller may see (asserted below)",
}

# Optional fields a valid body for these operations needs (the generator fills required ones only).
BODY_EXTRAS = {
    ("POST", "/api/v1/grants"): lambda ids: {"community_id": ids["community_id"]},
    ("POST", "/api/v1/grants/revoke"): lambda ids: {"community_id": ids["community_id"]},
    ("POST", "/api/v1/communities/{community_id}/drop-windows"): lambda ids: {"ends": "09:00:00"},
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


def _fill(path: str, ids: dict[str, int]) -> str:
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


def test_unscoped_lists_show_nothing_foreign(client, world, other_world):
    for role in FOREIGN_ROLES:
        communities = client.get("/api/v1/communities", headers=other_world.h(role)).json()["items"]
        assert world.community.id not in {c["id"] for c in communities}, role
        streets = client.get("/api/v1/streets", headers=other_world.h(role)).json()
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
