"""Activities for reports and check-in challenges with streaks, through the API."""

from __future__ import annotations

from datetime import timedelta

from tests.field import balance, cid, local_day


def _activity(**extra):
    return {
        "client_id": cid(), "kind": "lecture", "title": "垃圾分类大讲堂", "held_on": local_day().isoformat(), "place": "社区活动室",
        "duration_minutes": 90, "participants": 60, "unique_participants": 45, "direct_beneficiaries": 45,
        "indirect_beneficiaries": 135, "volunteers": 6, "leaflets": 100, "media_items": 1, "media_reads": 800,
        "photo_refs": ["img/2026/11/1.jpg"], "story": "居民踊跃参与。",
    } | extra


def test_activities_for_reports(client, world, other_world):
    c = world.community.id
    r = client.post(f"/api/v1/communities/{c}/activities", json=_activity(organisation_id=world.organisation.id), headers=world.h("org_admin"))
    assert r.status_code == 201, r.text
    aid = r.json()["id"]
    assert client.post(f"/api/v1/communities/{c}/activities", json=_activity(unique_participants=61), headers=world.h("committee")).status_code == 422
    foreign_org = client.post(f"/api/v1/communities/{c}/activities", json=_activity(organisation_id=other_world.organisation.id), headers=world.h("committee"))
    assert foreign_org.status_code == 404
    assert client.post(f"/api/v1/communities/{c}/activities", json=_activity(), headers=world.h("volunteer")).status_code == 403
    client.post(f"/api/v1/communities/{c}/activities", json=_activity(kind="class", participants=20, unique_participants=None), headers=world.h("committee"))
    fixed = client.patch(f"/api/v1/activities/{aid}", json={"participants": 70}, headers=world.h("committee"))
    assert fixed.status_code == 200 and fixed.json()["participants"] == 70
    assert client.patch(f"/api/v1/activities/{aid}", json={"unique_participants": 71}, headers=world.h("committee")).status_code == 422
    named = client.post(f"/api/v1/activities/{aid}/attendees", json={"household_ids": [h.id for h in world.households[:2]]},
                        headers=world.h("committee"))
    assert named.status_code == 200, named.text
    totals = client.get(f"/api/v1/communities/{c}/activities/totals", headers=world.h("street_viewer")).json()
    assert totals["activities"] == 2 and totals["participants"] == 90 and totals["unique_participants_known"] == 45
    # 人 from the households named, as the monthly report counts it; both activities lack names.
    assert (totals["people"], totals["activities_unnamed"], totals["unnamed_attendances"]) == (2, 2, 88)
    assert totals["by_kind"] == {"lecture": 1, "class": 1}
    items = client.get(f"/api/v1/communities/{c}/activities", headers=world.h("volunteer")).json()["items"]
    assert len(items) == 2


def _challenge(client, world, **extra):
    body = {
        "title": "21天减塑打卡", "days_required": 3, "starts_on": (local_day() - timedelta(days=10)).isoformat(),
        "ends_on": (local_day() + timedelta(days=30)).isoformat(), "reward": "环保袋一个",
    } | extra
    r = client.post(f"/api/v1/communities/{world.community.id}/challenges", json=body, headers=world.h("committee"))
    assert r.status_code == 201, r.text
    return r.json()


def test_challenge_streaks_complete_once_and_earn_points(client, world):
    ch = _challenge(client, world)
    url = f"/api/v1/challenges/{ch['id']}"
    mine = world.households[0].id  # the resident's household
    assert [x["title"] for x in client.get(f"/api/v1/communities/{world.community.id}/challenges", headers=world.h("resident")).json()["items"]] == ["21天减塑打卡"]
    joined = client.post(f"{url}/enrolments", json={"household_id": mine}, headers=world.h("resident"))
    assert joined.status_code == 201
    assert client.post(f"{url}/enrolments", json={"household_id": mine}, headers=world.h("resident")).status_code == 200
    assert client.post(f"{url}/enrolments", json={"household_id": world.households[1].id}, headers=world.h("resident")).status_code in (403, 404)

    today = client.post(f"{url}/checkins", json={"household_id": mine}, headers=world.h("resident")).json()
    assert today["streak"] == 1 and today["checked_today"] is True
    same = client.post(f"{url}/checkins", json={"household_id": mine}, headers=world.h("resident")).json()
    assert same["days_checked"] == 1
    # Residents check in for today only; staff may record the last 3 days for someone without a phone.
    r = client.post(f"{url}/checkins", json={"household_id": mine, "day": (local_day() - timedelta(days=1)).isoformat()}, headers=world.h("resident"))
    assert r.status_code == 403
    r = client.post(f"{url}/checkins", json={"household_id": mine, "day": (local_day() - timedelta(days=1)).isoformat()}, headers=world.h("volunteer"))
    assert r.json()["streak"] == 2 and r.json()["completed_at"] is None
    r = client.post(f"{url}/checkins", json={"household_id": mine, "day": (local_day() - timedelta(days=2)).isoformat()}, headers=world.h("volunteer"))
    assert r.json()["streak"] == 3 and r.json()["completed_at"] is not None and r.json()["points"] == 50
    assert balance(client, world, 0) == 50
    r = client.post(f"{url}/checkins", json={"household_id": mine, "day": (local_day() - timedelta(days=3)).isoformat()}, headers=world.h("volunteer"))
    assert r.json()["streak"] == 4 and balance(client, world, 0) == 50  # completed once
    too_old = client.post(f"{url}/checkins", json={"household_id": mine, "day": (local_day() - timedelta(days=4)).isoformat()}, headers=world.h("volunteer"))
    assert too_old.status_code == 422


def test_a_missed_day_ends_the_streak(client, world):
    ch = _challenge(client, world, points=30)
    url = f"/api/v1/challenges/{ch['id']}"
    h = world.households[1].id
    assert client.post(f"{url}/checkins", json={"household_id": h, "day": local_day().isoformat()}, headers=world.h("volunteer")).json()["error"]["code"] == "not_enrolled"
    assert client.post(f"{url}/enrolments", json={"household_id": h}, headers=world.h("volunteer")).status_code == 201
    client.post(f"{url}/checkins", json={"household_id": h, "day": (local_day() - timedelta(days=3)).isoformat()}, headers=world.h("volunteer"))
    client.post(f"{url}/checkins", json={"household_id": h, "day": (local_day() - timedelta(days=2)).isoformat()}, headers=world.h("volunteer"))
    # yesterday missed
    r = client.post(f"{url}/checkins", json={"household_id": h, "day": local_day().isoformat()}, headers=world.h("volunteer")).json()
    assert r["streak"] == 1 and r["best_streak"] == 2 and r["completed_at"] is None
    listed = client.get(f"/api/v1/households/{h}/challenges", headers=world.h("committee")).json()["items"]
    assert listed[0]["days_checked"] == 3
    stats = client.get(f"{url}/stats", headers=world.h("committee")).json()
    assert stats == {"enrolled": 1, "active": 1, "completed": 0}
    assert balance(client, world, 1) == 0
    over = client.post(
        f"/api/v1/communities/{world.community.id}/challenges",
        json={"title": "x", "days_required": 30, "starts_on": local_day().isoformat(), "ends_on": (local_day() + timedelta(days=5)).isoformat()},
        headers=world.h("committee"),
    )
    assert over.status_code == 400
