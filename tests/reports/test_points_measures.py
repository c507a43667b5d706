"""Points measures (app/reports/measures/points.py) through the HTTP API, the clock moving through
April and May 2026 (Asia/Shanghai): held is not spent, a closed month never changes, cheques count as
issued when issued, and every place that shows a measure shows the same number."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import datetime

import openpyxl

from tests.field import SHANGHAI
from tests.ledger.helpers import earn, verify_clean
from tests.rewards.helpers import add_item, consent_code, reserve


def _local(day: str, hour: int) -> datetime:
    return datetime.fromisoformat(f"{day}T{hour:02d}:00").replace(tzinfo=SHANGHAI)


def _export(world, month: str) -> list[dict[str, str]]:
    r = world.client.get(f"/api/v1/communities/{world.community.id}/reports/point-totals", params={"month": month},
                         headers=world.h("committee"))
    assert r.status_code == 200, r.text
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8").lstrip("\ufeff"))))
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


def _records(world, month: str, measure: str) -> tuple[float, list[dict]]:
    """A points figure's drill-down, every page (two rows a page): (the figure it gives, its rows)."""
    rows, cursor = [], None
    while True:
        r = world.client.get(f"/api/v1/organisations/{world.organisation.id}/reports/monthly/records/{measure}",
                             params={"month": month, "limit": 2, **({"cursor": cursor} if cursor else {})}, headers=world.h("org_admin"))
        assert r.status_code == 200, r.text
        rows += r.json()["rows"]
        cursor = r.json()["next_cursor"]
        if not cursor:
            return r.json()["figures"][measure], rows


def _monthly(world, month: str) -> dict[str, tuple]:
    r = world.client.get(f"/api/v1/organisations/{world.organisation.id}/reports/monthly", params={"month": month},
                         headers=world.h("org_admin"))
    assert r.status_code == 200, r.text
    return {f["key"]: (f["this_month"], f["cumulative"]) for f in r.json()["figures"]}


def _points(figures: dict[str, tuple]) -> dict[str, tuple]:
    return {k: v for k, v in figures.items() if k.startswith("points_")}


def _passbook_totals(world, household, start: str, end: str) -> dict:
    r = world.client.get(f"/api/v1/households/{household.id}/statement/totals", params={"start": start, "end": end},
                         headers=world.h("committee"))
    assert r.status_code == 200, r.text
    return r.json()


def _dashboard_points(world) -> dict[str, dict]:
    r = world.client.get(f"/api/v1/communities/{world.community.id}/reports/dashboard", headers=world.h("committee"))
    assert r.status_code == 200, r.text
    return {m["month"]: m for m in r.json()["points_by_month"]}


def _plate(rows, plate="101", building="1号楼") -> dict[str, str]:
    return next(r for r in rows if r["层级"] == "户" and r["门牌"] == plate and r["楼栋"] == building)


def _total(rows) -> dict[str, str]:
    return next(r for r in rows if r["层级"] == "总计")


def test_held_is_not_spent_a_closed_month_never_changes_and_cheques_count_when_issued(client, world, engine, clock):
    h = world.households[0]  # the `resident` user's household
    clock.set(_local("2026-04-10", 10))
    earn(engine, h, 100)  # a credit for an act, as a scan posts it
    r = client.post(f"/api/v1/communities/{world.community.id}/vouchers", headers=world.h("volunteer"),
                    json={"points": 55, "memo": "资源回收日 纸类", "idempotency_key": uuid.uuid4().hex})
    assert r.status_code == 201, r.text
    cheque = r.json()["claim_code"]
    r = client.post(f"/api/v1/households/{world.households[1].id}/adjustments", headers=world.h("committee"),
                    json={"points": 7, "reason": "活动奖励", "idempotency_key": uuid.uuid4().hex})
    assert r.status_code == 201, r.text

    # 30 April: three reservations for the 2 May exchange day hold 90 points; they are not spendable.
    clock.set(_local("2026-04-30", 10))
    bag = add_item(world, name="环保袋", price_points=30, stock=10, hold_hours=72)
    reservations = [reserve(world, bag["id"]) for _ in range(3)]
    assert all(r.status_code == 201 for r in reservations), [r.text for r in reservations]
    handed, cancelled, lapsing = (r.json()["id"] for r in reservations)
    refused = reserve(world, bag["id"])
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "insufficient_points"
    passbook = client.get(f"/api/v1/households/{h.id}/passbook", headers=world.h("resident")).json()
    assert (passbook["balance"], passbook["held_points"]) == (10, 90)

    # April, as exported on 1 May: nothing redeemed, 90 held apart; 发放积分 counts the unclaimed cheque.
    clock.set(_local("2026-05-01", 9))
    april = _export(world, "2026-04")
    mine = _plate(april)
    assert (mine["期初积分"], mine["获得合计"], mine["兑换消耗"], mine["期末积分"], mine["其中预约冻结"]) == ("0", "100", "0", "100", "90")
    april_report = _monthly(world, "2026-04")
    # 100 for acts, 7 by adjustment, and the 55-point cheque issued in April (claimed or not)
    assert april_report["points_issued"] == (162, 162)
    assert int(_total(april)["获得合计"]) + 55 == april_report["points_issued"][0]  # households got all but the cheque
    assert (april_report["points_redeemed"], april_report["points_held"]) == ((0, 0), (90, 90))

    # 2 May, the exchange day: one handed over, one cancelled, the cheque claimed; 3 May the third lapses.
    clock.set(_local("2026-05-02", 10))
    r = client.post(f"/api/v1/redemptions/{handed}/fulfil", json={"consent_code": consent_code(world)}, headers=world.h("clerk"))
    assert r.status_code == 200 and r.json()["status"] == "fulfilled", r.text
    r = client.post(f"/api/v1/redemptions/{cancelled}/cancel", json={}, headers=world.h("resident"))
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
    r = client.post(f"/api/v1/households/{h.id}/voucher-claims", json={"code": cheque}, headers=world.h("resident"))
    assert r.status_code == 200, r.text
    clock.set(_local("2026-05-03", 11))
    r = client.post(f"/api/v1/communities/{world.community.id}/redemptions/lapse-runs", headers=world.h("committee"))
    assert r.status_code == 200 and r.json()["lapsed"] == 1, r.text
    assert client.get(f"/api/v1/redemptions/{lapsing}", headers=world.h("clerk")).json()["status"] == "lapsed"

    # April is closed: its export and its report are what they were on 1 May.
    clock.set(_local("2026-06-01", 9))
    assert _export(world, "2026-04") == april
    assert _monthly(world, "2026-04") == april_report
    # Each points figure lists the entries behind it, which add up to it: 100 for the act, 7 adjusted, the 55-point
    # cheque under no household (not yet claimed when issued); the 90 held by one household at April's end.
    issued, rows = _records(world, "2026-04", "points_issued")
    assert issued == 162 == sum(r["points"] for r in rows)
    assert sorted((r["source"], r["points"], r["door_plate"]) for r in rows) == [
        ("adjustment", 7, "201"), ("checkin", 100, "101"), ("voucher", 55, None)]
    held, rows = _records(world, "2026-04", "points_held")
    assert held == 90 and [(r["door_plate"], r["points"], r["entries"]) for r in rows] == [("101", 90, 3)]
    assert _records(world, "2026-05", "points_held") == (0, [])
    book = openpyxl.load_workbook(io.BytesIO(world.client.get(
        f"/api/v1/organisations/{world.organisation.id}/reports/monthly", params={"month": "2026-04", "format": "xlsx"},
        headers=world.h("org_admin")).content))
    sheet = [row for row in book["明细-发放积分"].iter_rows(values_only=True) if row[0] is not None]
    assert sheet[-1][0].startswith("合计") and sheet[-1][-1] == 162 and len(sheet) == 2 + 1 + 3 + 1  # titles, header, 3 entries, total
    redeemed, rows = _records(world, "2026-05", "points_redeemed")
    assert redeemed == 30 and [(r["door_plate"], r["points"], r["local_date"]) for r in rows] == [("101", 30, "2026-05-02")]

    # May: the hand-over is redeemed in May, the released holds came back, the claim is no new issue.
    may = _plate(_export(world, "2026-05"))
    assert (may["期初积分"], may["获得·积分支票"], may["兑换消耗"], may["期末积分"], may["其中预约冻结"]) == ("100", "55", "30", "125", "0")
    may_report = _monthly(world, "2026-05")
    assert may_report["points_issued"] == (0, 162)
    assert may_report["points_redeemed"] == (30, 30) and may_report["points_held"] == (0, 0)
    passbook = client.get(f"/api/v1/households/{h.id}/passbook", headers=world.h("resident")).json()
    assert (passbook["balance"], passbook["held_points"]) == (125, 0)

    # The same measure, the same number, wherever it is shown.
    april_totals = _passbook_totals(world, h, "2026-04-01", "2026-04-30")
    may_totals = _passbook_totals(world, h, "2026-05-01", "2026-05-31")
    assert (april_totals["redeemed"], april_totals["held"], april_totals["balance"]) == (0, 90, 10)
    assert int(mine["期末积分"]) - int(mine["其中预约冻结"]) == april_totals["balance"]
    assert (may_totals["redeemed"], may_totals["held"], may_totals["balance"]) == (30, 0, 125)
    assert may_totals["points_by_source"] == {"voucher": 55, "redemption": -30}
    total_april, total_may = _total(april), _total(_export(world, "2026-05"))
    assert int(total_april["其中预约冻结"]) == april_report["points_held"][0] == april_totals["held"]
    assert int(total_may["兑换消耗"]) == may_report["points_redeemed"][0] == may_totals["redeemed"]
    dashboard = _dashboard_points(world)
    assert (dashboard["2026-04"]["issued"], dashboard["2026-04"]["redeemed"]) == (april_report["points_issued"][0], 0)
    assert (dashboard["2026-05"]["issued"], dashboard["2026-05"]["redeemed"]) == (0, may_report["points_redeemed"][0])
    verify_clean(engine, world.community.id)


def test_a_reversal_lands_in_the_month_it_happens(client, world, engine, clock):
    h = world.households[1]
    clock.set(_local("2026-04-12", 10))
    wrong = earn(engine, h, 8, source="compost")
    clock.set(_local("2026-05-01", 9))
    april = _export(world, "2026-04")
    april_report = _monthly(world, "2026-04")
    clock.set(_local("2026-05-06", 10))
    r = client.post(f"/api/v1/ledger/entries/{wrong}/reverse", json={"reason": "称重录错", "idempotency_key": uuid.uuid4().hex},
                    headers=world.h("committee"))
    assert r.status_code == 201, r.text
    assert _export(world, "2026-04") == april
    assert _points(_monthly(world, "2026-04")) == _points(april_report) and april_report["points_issued"] == (8, 8)
    may = _plate(_export(world, "2026-05"), plate="201")
    assert (may["期初积分"], may["获得·堆肥"], may["期末积分"]) == ("8", "-8", "0")
    assert _monthly(world, "2026-05")["points_issued"] == (-8, 0)
    issued, rows = _records(world, "2026-05", "points_issued")
    assert issued == -8 and [(r["points"], r["source"], r["source_name"], r["local_date"]) for r in rows] == [
        (-8, "compost", "冲正·堆肥", "2026-05-06")]
    assert _records(world, "2026-04", "points_issued")[0] == 8
