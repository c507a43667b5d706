"""Back-dated records (补录) through the HTTP API: a community joining with past months enters the rules
then in force, a past recycling day's weigh-ins and past activities, on the committee's authority with a
reason; the records say they are back-dated, and their points follow the rules in force at the act."""

from __future__ import annotations

import io
import uuid
from datetime import datetime

import openpyxl

from tests.field import SHANGHAI, payload


def _local(day: str, hour: int) -> datetime:
    return datetime.fromisoformat(f"{day}T{hour:02d}:00").replace(tzinfo=SHANGHAI)


def _weigh_in(world, grams: int, index: int = 0, **extra) -> dict:
    who = {"walk_in": True} if extra.pop("walk_in", False) else {"payload": payload(world, index)}
    return {"client_id": f"w-{uuid.uuid4().hex}", "category": "paper", "weight_g": grams, **who, **extra}


def test_a_past_month_is_back_dated_by_the_committee_and_earns_under_its_own_rules(client, world, engine, clock):
    c = world.community.id
    clock.set(_local("2026-12-05", 10))
    rules_url = f"/api/v1/communities/{c}/points-rules"
    september = {"effective_from": _local("2026-09-01", 0).isoformat(), "daily_cap": 20}
    r = client.post(rules_url, json=september, headers=world.h("committee"))
    assert r.status_code == 400 and r.json()["error"]["code"] == "retroactive_rule"
    reason = "项目十二月加入，补录九月起的积分规则"
    r = client.post(rules_url, json=september | {"backdate_reason": reason}, headers=world.h("org_admin"))
    assert r.status_code == 403
    r = client.post(rules_url, json=september | {"backdate_reason": reason}, headers=world.h("committee"))
    assert r.status_code == 201 and r.json()["backdated"] and r.json()["backdate_reason"] == reason, r.text
    r = client.post(rules_url, json={"daily_cap": None}, headers=world.h("committee"))  # today's rules: no cap
    assert r.status_code == 201 and not r.json()["backdated"], r.text

    r = client.put(f"/api/v1/communities/{c}/recycling-rates/paper", json={"name": "废纸", "unit": "kg", "points": 5},
                   headers=world.h("committee"))
    assert r.status_code in (200, 201), r.text
    day = {"occurs_on": "2026-10-15", "start_time": "09:00", "end_time": "11:00", "place": "社区广场"}
    events = f"/api/v1/communities/{c}/recycling-events"
    r = client.post(events, headers=world.h("committee"), json=day)
    assert r.status_code == 400 and r.json()["error"]["code"] == "backdate_reason_required"
    assert client.post(events, headers=world.h("org_admin"), json=day | {"backdate_reason": "十月回收日补录"}).status_code == 403
    r = client.post(events, headers=world.h("committee"), json=day | {"backdate_reason": "十月回收日补录"})
    assert r.status_code == 201 and r.json()["backdated"] and r.json()["backdate_reason"] == "十月回收日补录", r.text
    event = r.json()["id"]

    # The clerks' path is closed 3 days after the day; back-dating is the committee's, with a reason.
    r = client.post(f"/api/v1/recycling-events/{event}/weigh-ins", json=_weigh_in(world, 3000), headers=world.h("clerk"))
    assert r.status_code == 409 and r.json()["error"]["code"] == "event_closed"
    body = {"reason": "十月回收日纸质登记表补录", "weigh_ins": [_weigh_in(world, 3000), _weigh_in(world, 2000)]}
    url = f"/api/v1/recycling-events/{event}/backdated-weigh-ins"
    assert client.post(url, json=body, headers=world.h("clerk")).status_code == 403
    r = client.post(url, json=body, headers=world.h("committee"))
    assert r.status_code == 201, r.text
    rows = r.json()
    assert all(w["backdated"] and w["backdate_reason"] == body["reason"] for w in rows)
    # 15 + 10 points on 15 October, cut to 15 + 5 by September's cap of 20 a day (today's rules have none).
    assert [w["points"] for w in rows] == [15, 5]
    again = client.post(url, json=body, headers=world.h("committee"))  # a retry records nothing more
    assert again.status_code == 201 and [w["id"] for w in again.json()] == [w["id"] for w in rows]
    h = world.households[0]
    lines = client.get(f"/api/v1/households/{h.id}/statement", headers=world.h("committee")).json()["items"]
    recycled = [x for x in lines if x["source"] == "recycling"]
    assert sorted(x["points_in"] for x in recycled) == [5, 15]
    assert all(x["date"] == "2026-10-15" and x["memo"].startswith("补录") for x in recycled)

    # Activities held long ago are marked back-dated; the committee's reason is kept with them.
    activities = f"/api/v1/communities/{c}/activities"
    base = {"kind": "lecture", "title": "垃圾分类大讲堂", "place": "社区活动室", "participants": 30}
    r = client.post(activities, headers=world.h("committee"), json=base | {
        "client_id": f"a-{uuid.uuid4().hex}", "held_on": "2026-10-20", "backdate_reason": "补录十月活动签到表"})
    assert r.status_code == 201 and r.json()["backdated"] and r.json()["backdate_reason"] == "补录十月活动签到表", r.text
    r = client.post(activities, headers=world.h("org_admin"), json=base | {
        "client_id": f"a-{uuid.uuid4().hex}", "held_on": "2026-10-21", "backdate_reason": "机构补录"})
    assert r.status_code == 403  # a reason is the committee's to give
    r = client.post(activities, headers=world.h("committee"), json=base | {
        "client_id": f"a-{uuid.uuid4().hex}", "held_on": "2026-12-05", "backdate_reason": "今天的活动"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "not_backdated"
    r = client.post(activities, headers=world.h("committee"), json=base | {"client_id": f"a-{uuid.uuid4().hex}", "held_on": "2026-12-04"})
    assert r.status_code == 201 and not r.json()["backdated"]
    recent = r.json()["id"]
    # Held long ago and sent without a reason: refused, nothing recorded, the answer says what is missing.
    r = client.post(activities, headers=world.h("org_admin", **{"Accept-Language": "en"}),
                    json=base | {"client_id": f"a-{uuid.uuid4().hex}", "held_on": "2026-10-22"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "backdate_reason_required" and "reason" in r.json()["error"]["message"]
    listed = client.get(activities, params={"start": "2026-10-22", "end": "2026-10-22"}, headers=world.h("committee")).json()["items"]
    assert listed == []
    # Editing a closed month's activity, or moving one into it, is back-dating it too.
    october = client.get(activities, params={"start": "2026-10-20", "end": "2026-10-20"}, headers=world.h("committee")).json()["items"][0]
    edit = f"/api/v1/activities/{october['id']}"
    r = client.patch(edit, json={"participants": 300}, headers=world.h("committee"))
    assert r.status_code == 400 and r.json()["error"]["code"] == "backdate_reason_required"
    assert client.patch(edit, json={"participants": 300, "backdate_reason": "签到表重新核对"}, headers=world.h("org_admin")).status_code == 403
    r = client.patch(edit, json={"participants": 31, "backdate_reason": "签到表重新核对"}, headers=world.h("committee"))
    assert r.status_code == 200 and (r.json()["participants"], r.json()["backdate_reason"]) == (31, "签到表重新核对"), r.text
    r = client.patch(f"/api/v1/activities/{recent}", json={"held_on": "2026-10-02"}, headers=world.h("committee"))
    assert r.status_code == 400 and r.json()["error"]["code"] == "backdate_reason_required"
    r = client.patch(f"/api/v1/activities/{recent}", json={"title": "改个名字", "backdate_reason": "无需补录"}, headers=world.h("committee"))
    assert r.status_code == 400 and r.json()["error"]["code"] == "not_backdated"
    assert client.patch(f"/api/v1/activities/{recent}", json={"title": "改个名字"}, headers=world.h("committee")).status_code == 200
    # Naming (or removing) who came to it, too.
    named = f"{edit}/attendees"
    one = {"household_ids": [world.households[0].id]}
    r = client.post(named, json=one, headers=world.h("committee"))
    assert r.status_code == 400 and r.json()["error"]["code"] == "backdate_reason_required"
    assert client.post(named, json=one | {"backdate_reason": "签到表补录"}, headers=world.h("org_admin")).status_code == 403
    assert client.post(named, json=one | {"backdate_reason": "签到表补录"}, headers=world.h("committee")).json()["named"] == 1
    gone = f"{named}/{world.households[0].id}"
    assert client.delete(gone, headers=world.h("committee")).json()["error"]["code"] == "backdate_reason_required"
    assert client.delete(gone, params={"backdate_reason": "登记错了"}, headers=world.h("committee")).json()["named"] == 0

    # The reports: October's points are those of the act's day; the activity says it was back-dated.
    totals = client.get(f"/api/v1/communities/{c}/reports/point-totals", params={"month": "2026-10", "format": "xlsx"},
                        headers=world.h("committee"))
    sheet = openpyxl.load_workbook(io.BytesIO(totals.content))["户明细"]
    header = [x.value for x in sheet[4]]  # under the title rows
    assert [x.value for x in sheet[5]][header.index("获得·资源回收日")] == 20
    report = client.get(f"/api/v1/organisations/{world.organisation.id}/reports/monthly", params={"month": "2026-10"},
                        headers=world.h("org_admin")).json()
    figures = {f["key"]: f["this_month"] for f in report["figures"]}
    assert figures["points_issued"] == 20
    assert figures["backdated_records"] == 2 + 1  # two weigh-ins and one activity entered after the fact
    lines = [a for g in report["activities"] for a in g["activities"]]
    assert [(a["held_on"], a["backdated"]) for a in lines] == [("2026-10-20", True)]
    xlsx = client.get(f"/api/v1/organisations/{world.organisation.id}/reports/monthly",
                      params={"month": "2026-10", "format": "xlsx"}, headers=world.h("org_admin"))
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx.content))["活动"]
    marked = [(row[4], row[-1]) for row in sheet.iter_rows(min_row=5, values_only=True) if row[3]]  # under the header
    assert marked == [("垃圾分类大讲堂", "补录")]

    audit = client.get(f"/api/v1/communities/{c}/audit", params={"limit": 200}, headers=world.h("committee")).json()["items"]
    backdated = [a for a in audit if a["action"] == "recycling_event.backdate_weigh_ins"]
    assert len(backdated) == 1 and backdated[0]["detail"]["reason"] == body["reason"]
    assert any(a["action"] == "points_rule.create" and a["detail"].get("backdate_reason") == reason for a in audit)
