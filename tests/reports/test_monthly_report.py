"""The monthly report (月报): every figure from records with known sums; this month and cumulative apart."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta

import openpyxl
from sqlmodel import Session

from app.ledger import service as ledger
from tests.field import SHANGHAI
from tests.ledger.helpers import earn
from tests.reports.records import harvest, shift
from tests.reports.weighed import Weighed
from tests.support import backdating

SEPT = datetime(2026, 9, 20, 2, tzinfo=UTC)
OCT = datetime(2026, 10, 12, 2, tzinfo=UTC)
NOV = datetime(2026, 11, 3, 2, tzinfo=UTC)


def _weighed(client, world, clock) -> None:
    """What was weighed, at 0-point rates (the points are the ledger's own, posted in _records): kilograms
    and participating households come from these records."""
    w = Weighed(client, world, clock)
    rates = [("kitchen", "厨余", "kg", 0), ("paper", "纸类", "kg", 0), ("battery", "电池", "kg", 0), ("other", "其他", "kg", 0)]
    oct_, sept, nov = (w.recycling_day(when, rates) for when in (OCT, SEPT, NOV))
    for who, code, grams in ((0, "kitchen", 1234), (1, "kitchen", 2000), (2, "paper", 3001), (2, "battery", 17), (3, "other", 5)):
        w.weigh(oct_, OCT, who, code, grams)
    # The wrong household, corrected the same month: it leaves no trace.
    w.reverse_weigh_in(w.weigh(oct_, OCT, 5, "kitchen", 700)["id"], when=OCT + timedelta(hours=3))
    w.weigh(sept, SEPT, 0, "kitchen", 1000)
    w.weigh(sept, SEPT, 4, "paper", 500)
    w.weigh(nov, NOV, 6, "kitchen", 9999)  # after the month: in neither column


def _records(engine, world, client=None, clock=None) -> None:
    h = world.households
    if clock is not None:
        _weighed(client, world, clock)
    earn(engine, h[0], 5, when=OCT)
    earn(engine, h[1], 8, when=OCT, source="compost")
    earn(engine, h[2], 6, when=OCT, source="recycling")
    earn(engine, h[2], 2, when=OCT, source="recycling")
    earn(engine, h[3], 5, when=OCT)
    wrong = earn(engine, h[5], 5, when=OCT)
    with Session(engine) as s:  # scanned the wrong household: reversed now (December), counted when it happens
        ledger.reverse(s, wrong, reason="扫错了", actor_user_id=None, idempotency_key=f"rev:{wrong}")
        s.commit()
    earn(engine, h[0], 5, when=SEPT)
    earn(engine, h[4], 3, when=SEPT, source="recycling")
    earn(engine, h[6], 9, when=NOV)  # after the month: in neither column
    with Session(engine) as s:
        ledger.post(s, community_id=world.community.id, idempotency_key=f"redeem:{h[0].id}", source="redemption",
                    memo="兑换", household_id=h[0].id, occurred_at=OCT,
                    lines=[ledger.Line(-10, household_id=h[0].id), ledger.Line(10, system=ledger.SystemAccount.redeemed)])
        s.commit()


def _local(day: str, hour: int, minute: int = 0) -> datetime:
    return datetime.fromisoformat(f"{day}T{hour:02d}:{minute:02d}").replace(tzinfo=SHANGHAI)


def _activity(client, world, held_on: str, title: str, **figures) -> None:
    body = {"client_id": f"act-{uuid.uuid4().hex}", "kind": "lecture", "title": title, "held_on": held_on,
            "place": "社区活动室"} | backdating(held_on) | figures
    r = client.post(f"/api/v1/communities/{world.community.id}/activities", json=body, headers=world.h("committee"))
    assert r.status_code == 201, r.text


def _media(client, world, published_on: str, reads: int, **extra) -> None:
    body = {"client_id": f"media-{published_on}-{reads}-{world.community.id}", "title": "垃圾分类小课堂", "channel": "微信公众号",
            "published_on": published_on, "reads": reads} | extra
    r = client.post(f"/api/v1/communities/{world.community.id}/media-items", json=body, headers=world.h("org_admin"))
    assert r.status_code == 201, r.text


def _program_records(client, world, clock) -> None:
    """Activities, shifts, harvests and media in September, October (the report's month) and November.
    Boundaries are local (Asia/Shanghai): 31 October 23:30 is October, 1 November 00:10 is not. Media
    items are recorded on the last day of their month (a month counts what was recorded by its end)."""
    org = world.organisation.id
    _activity(client, world, "2026-10-08", "大讲堂", organisation_id=org, participants=40, unique_participants=30,
              direct_beneficiaries=40, indirect_beneficiaries=120, volunteers=5, media_items=1, media_reads=300)
    _activity(client, world, "2026-10-31", "小课堂", participants=25, direct_beneficiaries=25, volunteers=2)
    _activity(client, world, "2026-09-15", "堆肥工作坊", organisation_id=org, participants=10, unique_participants=10,
              direct_beneficiaries=10, indirect_beneficiaries=30, volunteers=1)
    _activity(client, world, "2026-11-02", "十一月活动", participants=99, direct_beneficiaries=99)
    shift(world, "volunteer", _local("2026-09-10", 9), 120)
    shift(world, "supervisor", _local("2026-10-05", 8), 90)
    shift(world, "volunteer", _local("2026-10-31", 23, 30), 45)  # signed in on 31 October (local): October
    shift(world, "clerk", _local("2026-11-01", 0, 10), 60)  # 31 October 16:10 UTC, but 1 November locally
    harvest(client, world, _local("2026-09-25", 10), 3000)
    harvest(client, world, _local("2026-10-01", 0, 30), 1234)  # 30 September 16:30 UTC: October locally
    harvest(client, world, _local("2026-11-02", 10), 999)
    back = clock.now()
    clock.set(_local("2026-10-31", 12))
    _media(client, world, "2026-10-03", 500, organisation_id=org)
    _media(client, world, "2026-10-31", 250)
    _media(client, world, "2026-11-01", 7777)  # published in November: not October's
    clock.set(_local("2026-09-30", 12))
    _media(client, world, "2026-09-30", 100)
    clock.set(back)


def test_every_figure_adds_up_from_the_records(client, world, engine, other_world, clock):
    _records(engine, world, client, clock)
    _program_records(client, world, clock)
    _activity(client, other_world, "2026-10-08", "别处的活动", participants=500)  # another street and organisation
    _media(client, other_world, "2026-10-08", 9000)
    r = client.get(f"/api/v1/organisations/{world.organisation.id}/reports/monthly", params={"month": "2026-10"},
                   headers=world.h("org_admin"))
    assert r.status_code == 200, r.text
    report = r.json()
    figures = {f["key"]: (f["this_month"], f["cumulative"]) for f in report["figures"]}
    waste = {f["key"]: (f["this_month"], f["cumulative"]) for f in report["waste_by_category"]}
    assert waste == {
        "waste_kitchen_kg": (3.234, 4.234),
        "waste_recyclable_kg": (3.001, 3.501),
        "waste_hazardous_kg": (0.017, 0.017),
        "waste_other_kg": (0.005, 0.005),
    }
    assert figures["waste_reduced_kg"] == (6.257, 7.757)
    for column in (0, 1):  # the categories add up to the total exactly (in grams)
        assert round(sum(v[column] * 1000 for v in waste.values())) == round(figures["waste_reduced_kg"][column] * 1000)
    assert figures["partner_organisations"] == (1, 1)
    assert figures["communities"] == (1, 1)
    assert figures["participating_households"] == (4, 5)
    # The mistaken October scan was reversed now (December): October's points, closed, keep it.
    assert figures["points_issued"] == (5 + 8 + 6 + 2 + 5 + 5, 31 + 5 + 3)
    assert figures["points_held"] == (0, 0) and figures["points_expired"] == (0, 0)
    assert figures["points_redeemed"] == (10, 10)
    # Every activity was entered in December, after its 3-day window: October's two, and September's in the cumulative.
    assert figures["backdated_records"] == (2, 3)
    # Activities, volunteers, compost and media: every figure from its records (sums worked out above).
    assert figures["activities"] == (2, 3)
    assert figures["activity_participants"] == (40 + 25, 40 + 25 + 10)  # the report's one 参与人次
    assert "attendances" not in figures
    # No attendee named: 人 is 0, and every activity is said to lack names (its 人次 all unnamed).
    assert figures["activity_people"] == (0, 0)
    assert figures["activities_unnamed"] == (2, 3) and figures["unnamed_attendances"] == (65, 75)
    assert figures["direct_beneficiaries"] == (65, 75)
    assert figures["indirect_beneficiaries"] == (120, 150)
    assert figures["activity_volunteers"] == (7, 8)
    assert figures["volunteer_attendances"] == (2, 3)
    assert figures["volunteer_hours"] == ((90 + 45) / 60, (120 + 90 + 45) / 60)
    assert figures["compost_produced_kg"] == (1.234, 4.234)
    assert figures["media_items"] == (2, 3)
    assert figures["media_reads"] == (750, 850)
    assert report["unavailable"] == {} and all(None not in v for v in figures.values())
    units = {f["key"]: f["unit"] for f in report["figures"]}
    assert (units["volunteer_hours"], units["compost_produced_kg"], units["activity_participants"]) == ("小时", "kg", "人次")
    # The month's activities by region and organisation, with their sums.
    groups = report["activities"]
    assert [(g["street"], g["community"], g["organisation"]) for g in groups] == [
        (world.street.name, world.community.name, world.organisation.name), (world.street.name, world.community.name, "社区自办")]
    assert [[a["title"] for a in g["activities"]] for g in groups] == [["大讲堂"], ["小课堂"]]
    # The activity's own media fields are not a second source: no media record names it.
    assert groups[0]["totals"] == {"activities": 1, "participants": 40, "named": 0, "direct_beneficiaries": 40,
                                   "indirect_beneficiaries": 120, "volunteers": 5, "leaflets": 0, "media_items": 0, "media_reads": 0}
    assert groups[1]["activities"][0]["unique_participants"] is None and groups[1]["totals"]["participants"] == 25
    assert sum(g["totals"]["participants"] for g in groups) == figures["activity_participants"][0]


def test_every_figure_names_the_records_that_give_it(client, world, engine, clock):
    """Each figure of the report, this month and cumulative, is given again by its drill-down (every page
    of it), the rows' totals where the drill-down totals a column of them."""
    _records(engine, world, client, clock)
    _program_records(client, world, clock)
    org = f"/api/v1/organisations/{world.organisation.id}/reports"
    report = client.get(f"{org}/monthly", params={"month": "2026-10"}, headers=world.h("org_admin")).json()
    figures = [*report["figures"], *report["waste_by_category"]]
    assert all(f["records"] for f in figures), [f["key"] for f in figures if not f["records"]]
    for cumulative, column in ((False, "this_month"), (True, "cumulative")):
        tables: dict[str, dict] = {}
        for f in figures:
            if f["records"] not in tables:
                rows, cursor = [], None
                while True:
                    r = client.get(f"{org}/monthly/records/{f['records']}", headers=world.h("org_admin"), params={
                        "month": "2026-10", "cumulative": str(cumulative).lower(), "limit": 3, **({"cursor": cursor} if cursor else {})})
                    assert r.status_code == 200, (f["records"], r.text)
                    rows += r.json()["rows"]
                    cursor = r.json()["next_cursor"]
                    if not cursor:
                        break
                tables[f["records"]] = r.json() | {"rows": rows}
            table = tables[f["records"]]
            if f["key"] in table["figures"]:
                assert table["figures"][f["key"]] == f[column], (f["key"], column)
            summed = [c["key"] for c in table["columns"] if c["total"]]
            if f["key"] == f["records"] and len(summed) == 1:  # a figure that is its records' one total
                total = sum(row[summed[0]] for row in table["rows"])
                assert (round(total / 1000, 3) if f["unit"] == "kg" else total) == f[column], (f["key"], column)
    assert len(tables["backdated_records"]["rows"]) == next(f["cumulative"] for f in figures if f["key"] == "backdated_records")
    assert sum(r["minutes"] for r in tables["volunteer_shifts"]["rows"]) > 0
    assert sum(r["compost_g"] for r in tables["compost_harvests"]["rows"]) > 0


def test_street_report_as_xlsx_and_printable_page(client, world, engine, clock):
    _records(engine, world, client, clock)
    _program_records(client, world, clock)
    url = f"/api/v1/streets/{world.street.id}/reports/monthly"
    x = client.get(url, params={"month": "2026-10", "format": "xlsx"}, headers=world.h("street_viewer"))
    assert x.status_code == 200 and "spreadsheetml" in x.headers["content-type"]
    ws = openpyxl.load_workbook(io.BytesIO(x.content))["月报"]
    rows = {row[0]: row[1:] for row in ws.iter_rows(min_row=4, values_only=True) if row[0]}
    assert list(ws.iter_rows(min_row=4, max_row=4, values_only=True))[0] == ("指标", "单位", "本月", "累计（项目开始至本月末）")
    assert ws["A1"].value == f"{world.street.name} 2026年10月月报 — 项目总体情况"
    assert rows["垃圾减量合计"] == ("kg", 6.257, 7.757)
    assert rows["厨余垃圾减量"] == ("kg", 3.234, 4.234)
    assert rows["开展活动"] == ("场", 2, 3)
    assert rows["志愿服务时长"] == ("小时", 2.25, 4.25)
    assert rows["堆肥产出"] == ("kg", 1.234, 4.234)
    assert rows["点击阅读量"] == ("次", 750, 850)
    sheet = openpyxl.load_workbook(io.BytesIO(x.content))["活动"]
    lines = list(sheet.iter_rows(min_row=4, values_only=True))
    assert lines[0][:7] == ("街道", "社区", "机构", "日期", "活动", "地点", "参与人次")
    assert [(r[0], r[2], r[4], r[6]) for r in lines[1:]] == [
        (world.street.name, world.organisation.name, "大讲堂", 40), (world.street.name, "社区自办", "小课堂", 25),
        ("合计（2场）", None, None, 65)]  # no subtotal rows among the activities: one total, under them
    # October's activities recorded in December: marked back-dated (补录) in a column of their own.
    assert lines[0][-1] == "补录" and [r[-1] for r in lines[1:]] == ["补录", "补录", None]
    page = client.get(url, params={"month": "2026-10", "format": "html"}, headers=world.h("street_viewer"))
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "2026年10月月报" in html and "本月" in html and "累计（项目开始至本月末）" in html
    assert "6.257" in html and "7.757" in html and "其中：有害垃圾减量" in html
    assert "大讲堂" in html and "社区自办" in html and "4.25" in html and "未记录" not in html
    assert "大讲堂（补录）" in html and "预约冻结积分" in html  # the points slice's additions beside the people's


def test_media_items_are_recorded_once_and_listed(client, world, other_world):
    url = f"/api/v1/communities/{world.community.id}/media-items"
    body = {"client_id": "media-once-0001", "title": "社区减废故事", "channel": "视频号", "published_on": "2026-11-20", "reads": 42}
    first = client.post(url, json=body, headers=world.h("committee"))
    again = client.post(url, json=body, headers=world.h("committee"))
    assert first.status_code == 201 and again.status_code == 201
    assert again.json()["id"] == first.json()["id"] and (first.json()["replayed"], again.json()["replayed"]) == (False, True)
    listed = client.get(url, params={"start": "2026-11-01"}, headers=world.h("street_viewer")).json()["items"]
    assert [(m["title"], m["reads"]) for m in listed] == [("社区减废故事", 42)]
    assert client.post(url, json=body | {"client_id": "media-vol-0001"}, headers=world.h("volunteer")).status_code == 403
    assert client.post(url, json=body | {"client_id": "media-for-0001"}, headers=other_world.h("committee")).status_code == 403
    foreign_org = client.post(url, json=body | {"client_id": "media-org-0001", "organisation_id": other_world.organisation.id},
                              headers=world.h("committee", **{"Accept-Language": "en"}))
    assert foreign_org.status_code == 404 and foreign_org.json()["error"]["message"] == "Organisation not found"
    assert client.post(url, json=body | {"client_id": "media-neg-0001", "reads": -1}, headers=world.h("committee")).status_code == 422
    assert client.post(url, json=body | {"client_id": "媒体-0001-abcdef"}, headers=world.h("committee")).status_code == 422


def test_monthly_report_scopes(client, world, other_world):
    org = f"/api/v1/organisations/{world.organisation.id}/reports/monthly"
    street = f"/api/v1/streets/{world.street.id}/reports/monthly"
    assert client.get(org, headers=world.h("committee")).status_code == 403
    assert client.get(street, headers=world.h("org_admin")).status_code == 403
    assert client.get(org, headers=other_world.h("org_admin")).status_code == 403
    assert client.get(street, headers=world.h("street_viewer")).status_code == 200


def test_media_reads_are_brought_up_to_date_and_audited(client, world, other_world, clock):
    from sqlmodel import Session, select

    from app.audit.models import AuditLog

    clock.set(_local("2026-10-25", 12))
    body = {"client_id": "media-upd-0001", "title": "旧标题", "channel": "微信公众号", "published_on": "2026-10-20", "reads": 10}
    item = client.post(f"/api/v1/communities/{world.community.id}/media-items", json=body, headers=world.h("committee")).json()
    url = f"/api/v1/media-items/{item['id']}"
    assert client.patch(url, json={"reads": 11}, headers=other_world.h("committee")).status_code == 403
    assert client.patch(url, json={"reads": 11}, headers=world.h("street_viewer")).status_code == 403
    r = client.patch(url, json={"reads": 1500, "published_on": "2026-10-21"}, headers=world.h("org_admin"))
    assert r.status_code == 200 and (r.json()["reads"], r.json()["published_on"]) == (1500, "2026-10-21")
    assert client.patch(url, json={"reads": 1500}, headers=world.h("org_admin")).status_code == 200  # no change
    with Session(world.engine) as s:
        rows = s.exec(select(AuditLog).where(AuditLog.action == "media_item.update", AuditLog.object_id == str(item["id"]))).all()
    assert len(rows) == 1 and rows[0].detail == {"before": {"reads": 10, "published_on": "2026-10-20"},
                                                 "after": {"reads": 1500, "published_on": "2026-10-21"}}
    report = client.get(f"/api/v1/organisations/{world.organisation.id}/reports/monthly", params={"month": "2026-10"},
                        headers=world.h("org_admin")).json()
    assert {f["key"]: f["this_month"] for f in report["figures"]}["media_reads"] == 1500

    def media(month: str) -> dict:
        r = client.get(f"/api/v1/organisations/{world.organisation.id}/reports/monthly", params={"month": month},
                       headers=world.h("org_admin")).json()
        return {f["key"]: (f["this_month"], f["cumulative"]) for f in r["figures"] if f["key"].startswith("media_")}

    # Reads keep growing after the month: October's report stays as it was, November gets the growth.
    clock.set(_local("2026-11-10", 12))
    assert client.patch(url, json={"reads": 2100}, headers=world.h("org_admin")).status_code == 200
    assert media("2026-10") == {"media_items": (1, 1), "media_reads": (1500, 1500)}
    assert media("2026-11") == {"media_items": (0, 1), "media_reads": (600, 2100)}
    # An item recorded in November for an October post counts in November (when it was recorded):
    # October's report never changes after the month.
    late = body | {"client_id": "media-upd-late", "published_on": "2026-10-30", "reads": 40}
    assert client.post(f"/api/v1/communities/{world.community.id}/media-items", json=late, headers=world.h("committee")).status_code == 201
    assert media("2026-10") == {"media_items": (1, 1), "media_reads": (1500, 1500)}
    assert media("2026-11") == {"media_items": (1, 2), "media_reads": (640, 2140)}
    missing = client.patch("/api/v1/media-items/999999999", json={"reads": 1}, headers=world.h("committee"))
    assert missing.status_code == 404
