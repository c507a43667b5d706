"""A resident's data on request (issue 21, PIPL): what is held about them, closing the account, and a
household marked moved out. Through the API."""

from __future__ import annotations

import uuid
from datetime import time

from sqlmodel import Session, select

from app.audit.models import AuditLog
from app.identity.models import HouseholdMember, User
from app.places.models import Household
from tests.field import payload, scan, setup_field
from tests.support import auth


def _point_totals(client, world) -> bytes:
    r = client.get(f"/api/v1/communities/{world.community.id}/reports/point-totals", headers=world.h("committee"))
    assert r.status_code == 200, r.text
    return r.content


def test_a_resident_sees_what_is_held_and_closes_the_account(client, world, engine, clock, wechat_state):
    clock.set_local(time(7, 30))
    field = setup_field(client, world)
    h = world.households[0]
    for _ in range(2):  # the morning's scan, and the evening's
        r = client.post(f"/api/v1/communities/{world.community.id}/checkins", json=scan(field["station_id"], payload(world, 0)),
                        headers=world.h("volunteer"))
        assert r.status_code == 201, r.text
        clock.set_local(time(18, 30))

    name = uuid.uuid4().hex[:8]
    token = client.post("/api/v1/auth/wechat/login", json={"code": f"code-{name}~1"}).json()["access_token"]
    bound = client.post("/api/v1/auth/wechat/phone", json={"code": f"phone-{world.phones[h.id]}"}, headers=auth(token))
    assert bound.status_code == 200 and h.id in bound.json()["household_ids"], bound.text
    sub = client.post("/api/v1/me/subscriptions", json={"client_id": uuid.uuid4().hex, "results": {"tmpl-recycling-day": "accept"}},
                      headers=auth(token))
    assert sub.status_code == 200, sub.text

    held = client.get("/api/v1/me/data", headers=auth(token))
    assert held.status_code == 200, held.text
    data = held.json()
    assert data["wechat_bound"] is True and data["phone_masked"] and data["active_sessions"] >= 1
    [household] = data["households"]
    assert household["id"] == h.id and household["phone_masked"] == h.phone_masked
    assert household["records"]["checkins"] == 2 and household["balance"] > 0
    assert household["door_plate"].endswith(h.door_plate)
    assert [x["template_id"] for x in data["subscriptions"]] == ["tmpl-recycling-day"]
    assert "openid" not in held.text and world.phones[h.id] not in held.text

    before = _point_totals(client, world)
    statement_before = client.get(f"/api/v1/households/{h.id}/statement", headers=world.h("committee")).json()["items"]
    # Staff close their accounts through an administrator.
    staff = client.post("/api/v1/me/close", headers=world.h("committee"))
    assert staff.status_code == 409 and staff.json()["error"]["code"] == "staff_account"

    closed = client.post("/api/v1/me/close", headers=auth(token))
    assert closed.status_code == 200, closed.text
    assert closed.json()["households_left"] == [h.id] and closed.json()["subscriptions_removed"] == 1
    assert client.get("/api/v1/me/data", headers=auth(token)).status_code == 401  # every session ended

    user_id = data["user_id"]
    with Session(engine) as s:
        user = s.get(User, user_id)
        assert (user.wechat_openid, user.wechat_unionid, user.phone_hash, user.phone_masked, user.display_name, user.is_active) == (
            None, None, None, None, "", False)
        assert s.exec(select(HouseholdMember).where(HouseholdMember.user_id == user_id)).first() is None
        household_row = s.get(Household, h.id)
        assert household_row.phone_hash is None and household_row.phone_masked is None and household_row.status == "active"
        assert s.exec(select(AuditLog).where(AuditLog.action == "user.close", AuditLog.actor_user_id == user_id)).first()
    # The household's passbook and every report are as they were.
    assert client.get(f"/api/v1/households/{h.id}/statement", headers=world.h("committee")).json()["items"] == statement_before
    assert _point_totals(client, world) == before
    # Signing in with the same WeChat account again starts afresh: no household, nothing of before.
    again = client.post("/api/v1/auth/wechat/login", json={"code": f"code-{name}~2"})
    assert again.status_code == 200
    fresh = client.get("/api/v1/me/data", headers=auth(again.json()["access_token"])).json()
    assert fresh["user_id"] != user_id and fresh["households"] == [] and fresh["phone_masked"] is None


def test_a_household_marked_moved_out_stops_scanning_and_keeps_its_history(client, world, clock):
    clock.set_local(time(7, 30))
    field = setup_field(client, world)
    h = world.households[1]
    r = client.post(f"/api/v1/communities/{world.community.id}/checkins", json=scan(field["station_id"], payload(world, 1)),
                    headers=world.h("volunteer"))
    assert r.status_code == 201, r.text
    statement = client.get(f"/api/v1/households/{h.id}/statement", headers=world.h("committee")).json()["items"]
    assert len(statement) == 1

    assert client.patch(f"/api/v1/households/{h.id}", json={"status": "moved_out"}, headers=world.h("volunteer")).status_code == 403
    moved = client.patch(f"/api/v1/households/{h.id}", json={"status": "moved_out"}, headers=world.h("committee"))
    assert moved.status_code == 200 and moved.json()["status"] == "moved_out"

    clock.set_local(time(18, 30))
    refused = client.post(f"/api/v1/communities/{world.community.id}/checkins", json=scan(field["station_id"], payload(world, 1)),
                          headers=world.h("volunteer"))
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "moved_out"
    assert client.get(f"/api/v1/households/{h.id}/statement", headers=world.h("committee")).json()["items"] == statement
    listed = client.get(f"/api/v1/communities/{world.community.id}/households", params={"status": "moved_out"},
                        headers=world.h("committee")).json()["items"]
    assert [x["id"] for x in listed] == [h.id]
