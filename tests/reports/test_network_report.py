"""A network of partner organisations (枢纽/联盟) and its monthly report, built through the HTTP API:
five partners running 25 communities, 110-odd activities in October (some people at several, some
activities with counts only), communities with no activity. Every figure is checked against sums
worked out here from what was sent, the drill-downs list exactly the records counted, and the
workbook is opened as a funder would."""

from __future__ import annotations

import io
import uuid
from datetime import date, datetime

import openpyxl
from sqlmodel import Session, select

from app.audit.models import AuditLog
from tests.field import SHANGHAI, local_day
from tests.support import backdating

ADMIN = "platform_admin"


def _local(day: str, hour: int = 12) -> datetime:
    return datetime.fromisoformat(f"{day}T{hour:02d}:00").replace(tzinfo=SHANGHAI)


def _ok(r, status: int = 201) -> dict:
    assert r.status_code == status, r.text
    return r.json()


class Network:
    """The network, built through the API; what was sent is kept to work out the expected sums."""

    def __init__(self, client, world):
        self.client, self.world = client, world
        self.h = world.h(ADMIN)
        tag = uuid.uuid4().hex[:6]
        self.partners = [_ok(client.post("/api/v1/organisations", json={"name": f"伙伴{p}-{tag}"}, headers=self.h))["id"]
                         for p in range(5)]
        # The coordinator (秘书处) is the world's organisation: its admin reads the network's report,
        # and it is not a partner (its own community is outside the network).
        self.body = {"name": f"零废弃网络-{tag}", "coordinator_organisation_id": world.organisation.id}
        self.network = _ok(client.post("/api/v1/networks", json=self.body, headers=self.h))
        self.id = self.network["id"]
        for p in self.partners:
            _ok(client.post(f"/api/v1/networks/{self.id}/partners", json={"organisation_id": p}, headers=self.h), 200)
        self.communities = [
            _ok(client.post("/api/v1/communities", headers=self.h,
                            json={"name": f"社区{n}-{tag}", "street_id": world.street.id, "organisation_id": self.partners[n % 5]}))["id"]
            for n in range(25)
        ]
        self.households: dict[int, list[int]] = {}
        for c in self.communities[:3]:
            compound = _ok(client.post(f"/api/v1/communities/{c}/compounds", json={"name": "一期"}, headers=self.h))["id"]
            building = _ok(client.post(f"/api/v1/compounds/{compound}/buildings", json={"name": "1号楼"}, headers=self.h))["id"]
            self.households[c] = [
                _ok(client.post(f"/api/v1/communities/{c}/households", headers=self.h,
                                json={"building_id": building, "unit": "1", "door_plate": f"{k + 1}01"}))["id"]
                for k in range(6)
            ]
        self.activities: list[dict] = []  # what was sent, with the id and the households named

    def activity(self, community: int, held_on: str, participants: int, named: list[int] = (), **figures) -> dict:
        body = {"client_id": f"net-{uuid.uuid4().hex}", "kind": "lecture", "title": f"活动{len(self.activities)}", "held_on": held_on,
                "place": "活动室", "participants": participants} | backdating(held_on, "网络补录活动签到表") | figures
        row = _ok(self.client.post(f"/api/v1/communities/{community}/activities", json=body, headers=self.h))
        if named:
            listed = _ok(self.client.post(f"/api/v1/activities/{row['id']}/attendees", json={"household_ids": list(named), **backdating(held_on, "网络补录活动签到表")},
                                          headers=self.h), 200)
            assert (listed["named"], listed["unnamed"]) == (len(set(named)), participants - len(set(named)))
        sent = body | {"id": row["id"], "community": community, "named": sorted(set(named))}
        self.activities.append(sent)
        return sent

    def report(self, month: str, role: str = "org_admin", fmt: str = "json"):
        r = self.client.get(f"/api/v1/networks/{self.id}/reports/monthly", params={"month": month, "format": fmt},
                            headers=self.world.h(role))
        assert r.status_code == 200, r.text
        return r if fmt != "json" else r.json()

    def records(self, month: str, measure: str, **params) -> dict:
        """Every page of a drill-down, its rows joined."""
        out, cursor = None, None
        while True:
            page = _ok(self.client.get(f"/api/v1/networks/{self.id}/reports/monthly/records/{measure}",
                                       params={"month": month, **params, **({"cursor": cursor} if cursor else {})},
                                       headers=self.world.h("org_admin")), 200)
            if out is None:
                out = page
            else:
                assert page["figures"] == out["figures"]
                out["rows"] += page["rows"]
            cursor = page["next_cursor"]
            if not cursor:
                return out


def _figures(report: dict) -> dict[str, tuple]:
    return {f["key"]: (f["this_month"], f["cumulative"]) for f in report["figures"]}


def _build(client, world, clock) -> Network:
    net = Network(client, world)
    c = net.communities
    # October: 110 activities in the first 20 communities (communities 20-24 hold none).
    for i in range(110):
        community = c[i % 20]
        people = net.households.get(community, [])
        named = people[: 3 + (i // 20) % 4] if people else []  # the same households again and again
        net.activity(community, date(2026, 10, 1 + i % 28).isoformat(), 10 + i % 7, named,
                     leaflets=(i % 3) * 5, direct_beneficiaries=10 + i % 7, indirect_beneficiaries=30 + i % 5, volunteers=i % 4)
    # One October activity whose every attendee is named: it does not lack names.
    net.activity(c[0], "2026-10-30", 4, net.households[c[0]][:4], leaflets=7)
    # September: six activities, one with a named household that comes back in October; community
    # 21's only activity is in September. November: after the month.
    for k, community in enumerate((c[0], c[1], c[2], c[3], c[4], c[21])):
        net.activity(community, f"2026-09-{10 + k}", 5, net.households[c[0]][:1] if k == 0 else [], leaflets=2, direct_beneficiaries=5)
    net.activity(c[0], "2026-11-02", 99, leaflets=50)
    # Outside the network: the coordinator's own community.
    outside = {"client_id": f"out-{uuid.uuid4().hex}", "kind": "lecture", "title": "秘书处活动", "held_on": "2026-10-08", "participants": 500,
               "leaflets": 1000, **backdating("2026-10-08")}
    _ok(client.post(f"/api/v1/communities/{world.community.id}/activities", json=outside, headers=world.h("committee")))
    # Community 20 holds no activity but a volunteer shift on 20 October: it is active all the same.
    back = clock.now()
    clock.set(_local("2026-10-20", 9))
    shift = _ok(client.post(f"/api/v1/communities/{c[20]}/shifts", json={"client_id": f"shift-{uuid.uuid4().hex}"}, headers=net.h))
    clock.set(_local("2026-10-20", 11))
    _ok(client.post(f"/api/v1/shifts/{shift['id']}/sign-out", json={}, headers=net.h), 200)
    # Media recorded in October, two reporting an activity.
    for n, (activity, reads) in enumerate(((net.activities[0], 300), (net.activities[5], 120), (None, 80))):
        body = {"client_id": f"netmedia-{n}-{uuid.uuid4().hex[:8]}", "title": f"报道{n}", "channel": "微信公众号",
                "published_on": "2026-10-15", "reads": reads}
        community = c[0] if activity is None else activity["community"]
        if activity is not None:
            body["activity_id"] = activity["id"]
        _ok(client.post(f"/api/v1/communities/{community}/media-items", json=body, headers=net.h))
    clock.set(back)
    return net


def _expected(net: Network, start: str, end: str) -> dict[str, int]:
    held = [a for a in net.activities if start <= a["held_on"] <= end]
    return {
        "activities": len(held),
        "activity_participants": sum(a["participants"] for a in held),
        "activity_people": len({h for a in held for h in a["named"]}),
        "activities_unnamed": sum(1 for a in held if len(a["named"]) < a["participants"]),
        "unnamed_attendances": sum(a["participants"] - len(a["named"]) for a in held),
        "leaflets": sum(a.get("leaflets", 0) for a in held),
        "direct_beneficiaries": sum(a.get("direct_beneficiaries", 0) for a in held),
        "indirect_beneficiaries": sum(a.get("indirect_beneficiaries", 0) for a in held),
        "activity_volunteers": sum(a.get("volunteers", 0) for a in held),
    }


def test_network_report_counts_partners_communities_people_and_leaflets(client, world, other_world, clock):
    net = _build(client, world, clock)
    october, september = net.report("2026-10"), net.report("2026-09")
    now, before = _figures(october), _figures(september)
    assert (october["scope"], october["name"]) == ("network", net.body["name"])
    # Five partners, never six: the network is not one of them, nor is its coordinator.
    assert now["partner_organisations"] == (5, 5)
    # Communities with any record: 20 with activities and one with only a shift; cumulative adds the
    # community whose only activity was in September (counted once, not month by month).
    assert now["communities"] == (21, 22) and before["communities"] == (6, 6)
    oct_sums, sept_sums = _expected(net, "2026-10-01", "2026-10-31"), _expected(net, "2026-09-01", "2026-09-30")
    all_sums = _expected(net, "2000-01-01", "2026-10-31")
    assert oct_sums["activities"] == 111 and oct_sums["activity_people"] == 18 and sept_sums["activity_people"] == 1
    for key, value in oct_sums.items():
        assert now[key] == (value, all_sums[key]), key
        assert before[key][0] == sept_sums[key], key
    # 人 is distinct households: the September household came back in October, so the cumulative is
    # not September's plus October's; every sum is.
    assert now["activity_people"][1] == 18 != before["activity_people"][1] + now["activity_people"][0]
    for key in ("activities", "activity_participants", "leaflets", "unnamed_attendances", "direct_beneficiaries", "activity_volunteers"):
        assert now[key][1] == before[key][1] + now[key][0], key
    assert now["activities_unnamed"][0] == 110  # all but the one activity whose every attendee is named
    assert now["media_items"] == (3, 3) and now["media_reads"] == (500, 500)
    # The definitions are in the report, one per measure, and one 参与人次 only.
    terms = {d["key"]: d["term"] for d in october["definitions"]}
    assert {"activity_participants", "activity_people", "communities", "leaflets", "media_reads", "indirect_beneficiaries",
            "participating_households", "partner_organisations"} <= set(terms)
    assert [f["label"] for f in october["figures"]].count("活动参与人次") == 1
    assert not [f for f in october["figures"] if "参与人次" in f["label"] and f["key"] != "activity_participants"]
    # The activity lines carry what was named and the media reporting them.
    lines = {a["id"]: a for g in october["activities"] for a in g["activities"]}
    first = lines[net.activities[0]["id"]]
    assert (first["named"], first["media_items"], first["media_reads"], first["leaflets"]) == (3, 1, 300, 0)
    assert sum(g["totals"]["participants"] for g in october["activities"]) == now["activity_participants"][0]

    # A partner's own report counts itself only; its communities are its own.
    own = client.get(f"/api/v1/organisations/{net.partners[0]}/reports/monthly", params={"month": "2026-10"}, headers=net.h).json()
    assert _figures(own)["partner_organisations"] == (1, 1)
    assert _figures(own)["communities"][0] == 5  # c[0], c[5], c[10], c[15] with activities, c[20] with its shift
    # Who reads it: the coordinator's admin and platform admins, nobody else.
    url = f"/api/v1/networks/{net.id}/reports/monthly"
    for headers in (other_world.h("org_admin"), world.h("committee"), world.h("street_viewer")):
        assert client.get(url, params={"month": "2026-10"}, headers=headers).status_code == 403
    assert client.get(url, params={"month": "2026-10"}, headers=world.h(ADMIN)).status_code == 200
    assert client.get("/api/v1/networks/999999999/reports/monthly", headers=world.h("org_admin")).status_code == 404


def test_drill_downs_list_exactly_the_records_counted(client, world, clock):
    net = _build(client, world, clock)
    c = net.communities
    figures = _figures(net.report("2026-10"))
    october = [a for a in net.activities if a["held_on"].startswith("2026-10")]

    # Each of these figures names its drill-down.
    report = net.report("2026-10")
    records = {f["key"]: f["records"] for f in report["figures"]}
    assert (records["partner_organisations"], records["communities"], records["activity_participants"], records["leaflets"],
            records["activity_people"], records["media_reads"]) == ("partner_organisations", "communities", "activities",
                                                                  "activities", "people", "media")
    for measure in set(filter(None, records.values())):
        assert net.records("2026-10", measure)["measure"] == measure
    acts = net.records("2026-10", "activities")
    assert sorted(r["activity_id"] for r in acts["rows"]) == sorted(a["id"] for a in october)
    assert sum(r["participants"] for r in acts["rows"]) == figures["activity_participants"][0] == acts["figures"]["activity_participants"]
    assert sum(r["leaflets"] for r in acts["rows"]) == figures["leaflets"][0]
    assert sum(1 for r in acts["rows"] if r["unnamed"] > 0) == figures["activities_unnamed"][0]

    people = net.records("2026-10", "people")
    named = sorted((a["id"], h) for a in october for h in a["named"])
    assert sorted((r["activity_id"], r["household_id"]) for r in people["rows"]) == named
    assert len({r["household_id"] for r in people["rows"]}) == figures["activity_people"][0] == 18
    assert sum(1 for r in people["rows"] if r["first_time"]) == 18
    assert all(set(r) >= {"building", "unit", "door_plate"} and "phone" not in str(r) for r in people["rows"])

    communities = net.records("2026-10", "communities")
    assert sorted(r["community_id"] for r in communities["rows"]) == sorted([*c[:20], c[20]])
    assert len(communities["rows"]) == figures["communities"][0]
    shift_row = next(r for r in communities["rows"] if r["community_id"] == c[20])
    assert (shift_row["activity"], shift_row["volunteer_shift"]) == (0, 1)

    partners = net.records("2026-10", "partner_organisations")
    assert [r["organisation_id"] for r in partners["rows"]] == net.partners
    assert [r["communities"] for r in partners["rows"]] == [5] * 5

    media = net.records("2026-10", "media")
    assert sum(r["reads_this_month"] for r in media["rows"]) == figures["media_reads"][0] == 500
    assert sum(r["new_this_month"] for r in media["rows"]) == figures["media_items"][0] == 3
    # Cumulative: from the start to October's end, as the report's cumulative column.
    every = net.records("2026-10", "activities", cumulative="true", limit=7)
    assert every["figures"]["activity_participants"] == figures["activity_participants"][1]
    assert len(every["rows"]) == figures["activities"][1] > len(acts["rows"])
    assert len({r["household_id"] for r in net.records("2026-10", "people", cumulative="true")["rows"]}) == figures["activity_people"][1]
    # The waste figures have theirs at the same address, in the same shape.
    kg = net.records("2026-10", "waste_reduced_kg")
    assert kg["figures"]["waste_reduced_kg"] == figures["waste_reduced_kg"][0]
    assert round(sum(r["grams"] for r in kg["rows"]) / 1000, 3) == figures["waste_reduced_kg"][0]
    assert len(net.records("2026-10", "participating_households")["rows"]) == figures["participating_households"][0]
    # Nothing of November's or September's in October's records.
    assert net.records("2026-11", "activities")["figures"]["activities"] == 1
    assert client.get(f"/api/v1/networks/{net.id}/reports/monthly/records/nonsense", headers=world.h("org_admin")).status_code == 422


def test_network_workbook_a_funder_can_use(client, world, clock):
    net = _build(client, world, clock)
    x = net.report("2026-10", fmt="xlsx")
    book = openpyxl.load_workbook(io.BytesIO(x.content))
    assert {"月报", "活动", "按社区机构汇总", "说明", "明细-活动", "明细-参与者", "明细-开展社区", "明细-伙伴机构", "明细-媒体传播"} <= set(book.sheetnames)
    for ws in book.worksheets:  # the network's name and the period on every sheet; A4, titles repeated, fitted to width
        assert net.body["name"] in ws["A1"].value and "2026年10月" in ws["A1"].value, ws.title
        assert "2026-10-01 至 2026-10-31" in ws["A2"].value, ws.title
        assert ws.page_setup.paperSize == 9 and ws.print_title_rows == "$1:$4", ws.title
        # Fit to one page wide (an absent fitToWidth is OOXML's default, 1), as many pages long as it takes.
        fit = (ws.page_setup.fitToWidth or 1, ws.page_setup.fitToHeight)
        assert ws.sheet_properties.pageSetUpPr.fitToPage and fit == (1, 0), ws.title
    summary = {row[0]: row[1:] for row in book["月报"].iter_rows(min_row=5, values_only=True) if row[0]}
    assert summary["伙伴机构"] == ("家", 5, 5)
    assert summary["开展社区"] == ("个", 21, 22)
    assert summary["发放宣传品"][1] == _expected(net, "2026-10-01", "2026-10-31")["leaflets"]

    sheet = book["活动"]
    rows = list(sheet.iter_rows(min_row=4, values_only=True))
    header, data, total = rows[0], rows[1:-1], rows[-1]
    assert header[:7] == ("街道", "社区", "机构", "日期", "活动", "地点", "参与人次")  # one header row
    assert len(data) == 111 and all(isinstance(r[3], datetime) for r in data)  # real dates, not text
    assert sheet.cell(row=5, column=4).number_format == "yyyy-mm-dd"
    assert not any(str(r[4]).startswith("小计") for r in data)  # no subtotal rows among the activities
    assert total[0] == "合计（111场）" and sheet.cell(row=4 + len(rows) - 1, column=1).font.b
    columns = {h: i for i, h in enumerate(header)}
    for name in ("参与人次", "已登记参与者", "宣传品", "媒体报道", "阅读量（月末）"):
        assert total[columns[name]] == sum(r[columns[name]] for r in data), name
    assert total[columns["媒体报道"]] == 2 and total[columns["阅读量（月末）"]] == 420  # the media columns are filled

    groups = list(book["按社区机构汇总"].iter_rows(min_row=5, values_only=True))
    assert groups[-1][0] == "合计（111场）" and sum(r[3] for r in groups[:-1]) == groups[-1][3] == 111

    notes = {r[0]: r[1] for r in book["说明"].iter_rows(min_row=5, values_only=True) if r[0]}
    assert {"参与人次", "参与人数（人）", "开展社区", "发放宣传品", "点击阅读量", "媒体传播（篇）", "参与家庭"} <= set(notes)

    detail = list(book["明细-参与者"].iter_rows(min_row=5, values_only=True))
    assert len(detail) == sum(len(a["named"]) for a in net.activities if a["held_on"].startswith("2026-10"))
    assert all(isinstance(r[1], datetime) for r in detail)
    activity_detail = list(book["明细-活动"].iter_rows(min_row=5, values_only=True))
    assert activity_detail[-1][0] == "合计（111条）" and len(activity_detail) == 112

    page = net.report("2026-10", fmt="html").text
    assert net.body["name"] in page and "说明" in page and "参与人数（人）" in page


def test_network_api_partners_and_audit(client, world, other_world):
    h = world.h(ADMIN)
    org = _ok(client.post("/api/v1/organisations", json={"name": "绿邻居"}, headers=h))["id"]
    body = {"name": f"义仓发展网络-{uuid.uuid4().hex[:6]}"}
    first = _ok(client.post("/api/v1/networks", json=body, headers=h))
    again = _ok(client.post("/api/v1/networks", json=body, headers=h))  # a retry: the same network
    assert again["id"] == first["id"] and first["partners"] == []
    other = client.post("/api/v1/networks", json=body | {"coordinator_organisation_id": org}, headers=h)
    assert other.status_code == 409
    url = f"/api/v1/networks/{first['id']}/partners"
    for _ in range(2):  # adding again changes nothing
        added = _ok(client.post(url, json={"organisation_id": org}, headers=h), 200)
        assert [p["id"] for p in added["partners"]] == [org]
    assert client.post(url, json={"organisation_id": 999999999}, headers=h).status_code == 404
    for role in ("org_admin", "committee", "street_viewer"):
        assert client.post(url, json={"organisation_id": org}, headers=world.h(role)).status_code == 403
        assert client.post("/api/v1/networks", json={"name": "自建网络"}, headers=world.h(role)).status_code == 403
    # No coordinator: only platform admins read it.
    assert client.get(f"/api/v1/networks/{first['id']}", headers=world.h("org_admin")).status_code == 403
    assert _ok(client.delete(f"{url}/{org}", headers=h), 200)["partners"] == []
    assert _ok(client.delete(f"{url}/{org}", headers=h), 200)["partners"] == []  # removing again changes nothing
    with Session(world.engine) as s:
        actions = [a.action for a in s.exec(select(AuditLog).where(AuditLog.object_type == "network",
                                                                   AuditLog.object_id == str(first["id"])).order_by(AuditLog.id))]
    assert actions == ["network.create", "network.partner_add", "network.partner_remove"]
    report = _ok(client.get(f"/api/v1/networks/{first['id']}/reports/monthly", params={"month": "2026-10"}, headers=h), 200)
    assert _figures(report)["partner_organisations"] == (0, 0) and _figures(report)["communities"] == (0, 0)


def test_attendees_are_named_once_within_the_attendances(client, world, other_world):
    h = world.h("committee")
    body = {"client_id": f"att-{uuid.uuid4().hex}", "kind": "class", "title": "小课堂", "held_on": local_day().isoformat(),
            "participants": 3}
    activity = _ok(client.post(f"/api/v1/communities/{world.community.id}/activities", json=body, headers=h))
    url = f"/api/v1/activities/{activity['id']}/attendees"
    mine = [x.id for x in world.households]
    named = _ok(client.post(url, json={"household_ids": mine[:2]}, headers=h), 200)
    assert (named["named"], named["unnamed"]) == (2, 1)
    assert _ok(client.post(url, json={"household_ids": mine[:2]}, headers=h), 200)["named"] == 2  # a retry changes nothing
    too_many = client.post(url, json={"household_ids": mine[:4]}, headers=h)
    assert too_many.status_code == 409 and too_many.json()["error"]["code"] == "more_than_attendances"
    assert _ok(client.get(url, headers=h), 200)["named"] == 2  # none of the four was named
    foreign = client.post(url, json={"household_ids": [other_world.households[0].id]}, headers=h)
    assert foreign.status_code == 404
    assert client.post(url, json={"household_ids": [mine[2]]}, headers=other_world.h("committee")).status_code == 403
    assert client.post(url, json={"household_ids": [mine[2]]}, headers=world.h("volunteer")).status_code == 403
    fewer = client.patch(f"/api/v1/activities/{activity['id']}", json={"participants": 1}, headers=h)
    assert fewer.status_code == 422 and fewer.json()["error"]["code"] == "fewer_than_named"
    left = _ok(client.delete(f"{url}/{mine[0]}", headers=h), 200)
    assert [a["household_id"] for a in left["items"]] == [mine[1]] and "phone" not in str(left)
    with Session(world.engine) as s:
        actions = [a.action for a in s.exec(select(AuditLog).where(AuditLog.object_type == "activity",
                                                                   AuditLog.object_id == str(activity["id"])).order_by(AuditLog.id))]
    assert actions == ["activity.create", "activity.attendees_add", "activity.attendee_remove"]


def test_names_sent_at_once_never_outnumber_the_attendances(client, world):
    from functools import partial

    from tests.support import race

    h = world.h("committee")
    body = {"client_id": f"race-{uuid.uuid4().hex}", "kind": "game", "title": "游戏", "held_on": local_day().isoformat(),
            "participants": 2}
    activity = _ok(client.post(f"/api/v1/communities/{world.community.id}/activities", json=body, headers=h))
    url = f"/api/v1/activities/{activity['id']}/attendees"
    ids = [x.id for x in world.households]
    answers = race(*(partial(client.post, url, json={"household_ids": ids[2 * n:2 * n + 2]}, headers=h) for n in range(3)))
    assert sorted(a.status_code for a in answers) == [200, 409, 409]
    assert _ok(client.get(url, headers=h), 200)["named"] == 2
