"""Volunteers through the API: teams, shifts with sign-in and sign-out, hours, points for hours."""

from __future__ import annotations

from datetime import timedelta

from app.core.db import utcnow
from tests.field import balance, cid, make_member, setup_field


def test_teams(client, world, other_world):
    c = world.community.id
    r = client.post(f"/api/v1/communities/{c}/volunteer-teams", json={"name": "盯桶侠", "leader_user_id": world.users["supervisor"]}, headers=world.h("committee"))
    assert r.status_code == 201, r.text
    team = r.json()
    assert team["members"] == [world.users["supervisor"]]
    added = client.post(f"/api/v1/volunteer-teams/{team['id']}/members", json={"user_id": world.users["volunteer"]}, headers=world.h("committee"))
    assert sorted(added.json()["members"]) == sorted([world.users["supervisor"], world.users["volunteer"]])
    stranger = client.post(f"/api/v1/volunteer-teams/{team['id']}/members", json={"user_id": other_world.users["volunteer"]}, headers=world.h("committee"))
    assert stranger.status_code == 404
    assert client.post(f"/api/v1/communities/{c}/volunteer-teams", json={"name": "盯桶侠"}, headers=world.h("committee")).status_code == 409
    assert client.post(f"/api/v1/communities/{c}/volunteer-teams", json={"name": "x"}, headers=world.h("volunteer")).status_code == 403
    assert [t["name"] for t in client.get(f"/api/v1/communities/{c}/volunteer-teams", headers=world.h("volunteer")).json()["items"]] == ["盯桶侠"]


def test_shift_sign_in_and_out_counts_minutes_once(client, world):
    c = world.community.id
    f = setup_field(client, world)
    started = (utcnow() - timedelta(minutes=95)).isoformat()
    body = {"client_id": cid(), "station_id": f["station_id"], "at": started}
    first = client.post(f"/api/v1/communities/{c}/shifts", json=body, headers=world.h("volunteer"))
    assert first.status_code == 201, first.text
    again = client.post(f"/api/v1/communities/{c}/shifts", json=body, headers=world.h("volunteer"))
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    second = client.post(f"/api/v1/communities/{c}/shifts", json={"client_id": cid()}, headers=world.h("volunteer"))
    assert second.status_code == 409 and second.json()["error"]["code"] == "shift_open"
    sid = first.json()["id"]
    assert client.post(f"/api/v1/shifts/{sid}/sign-out", json={}, headers=world.h("clerk")).status_code == 403
    out = client.post(f"/api/v1/shifts/{sid}/sign-out", json={}, headers=world.h("volunteer"))
    assert out.status_code == 200 and out.json()["minutes"] in (95, 96)
    minutes = out.json()["minutes"]
    later = client.post(f"/api/v1/shifts/{sid}/sign-out", json={}, headers=world.h("volunteer"))
    assert later.json()["minutes"] == minutes and later.json()["signed_out_at"] == out.json()["signed_out_at"]
    assert client.post(f"/api/v1/communities/{c}/shifts", json={"client_id": cid()}, headers=world.h("volunteer")).status_code == 201

    hours = client.get(f"/api/v1/communities/{c}/volunteer-hours", headers=world.h("committee"))
    assert hours.status_code == 200
    mine = [h for h in hours.json()["items"] if h["user_id"] == world.users["volunteer"]]
    assert mine[0]["minutes"] == minutes and mine[0]["shifts"] == 1
    assert client.get(f"/api/v1/communities/{c}/volunteer-hours", headers=world.h("volunteer")).status_code == 403
    open_shifts = client.get(f"/api/v1/communities/{c}/shifts", params={"open_only": True}, headers=world.h("supervisor")).json()["items"]
    assert len(open_shifts) == 1
    # A supervisor may close a shift someone forgot to sign out of.
    closed = client.post(f"/api/v1/shifts/{open_shifts[0]['id']}/sign-out", json={}, headers=world.h("supervisor"))
    assert closed.status_code == 200 and closed.json()["minutes"] == 0


def test_hours_earn_points_for_the_volunteers_household_where_enabled(client, world):
    c = world.community.id
    headers = make_member(world, "volunteer", 2)
    assert client.post(f"/api/v1/communities/{c}/points-rules", json={"volunteer_per_hour": 10}, headers=world.h("committee")).status_code == 201
    body = {"client_id": cid(), "at": (utcnow() - timedelta(minutes=150)).isoformat()}
    sid = client.post(f"/api/v1/communities/{c}/shifts", json=body, headers=headers).json()["id"]
    out = client.post(f"/api/v1/shifts/{sid}/sign-out", json={}, headers=headers).json()
    assert out["points"] == 25
    client.post(f"/api/v1/shifts/{sid}/sign-out", json={}, headers=headers)
    assert balance(client, world, 2) == 25
    bad = client.post(f"/api/v1/communities/{c}/shifts", json={"client_id": cid(), "at": (utcnow() + timedelta(hours=1)).isoformat()}, headers=headers)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "in_future"
