"""Point totals export: figures per household, subtotals, formats, scopes, audit, CLI."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import openpyxl
from sqlmodel import Session, select
from typer.testing import CliRunner

from app.audit.models import AuditLog
from app.cli import app as cli
from app.ledger import service as ledger
from app.places.models import Building, Household
from app.places.service import new_public_code
from tests.ledger.helpers import earn, expire, spend
from tests.reports.weighed import Weighed

# Local (Asia/Shanghai) October 2026 is [2026-09-30 16:00Z, 2026-10-31 16:00Z).
BEFORE = datetime(2026, 9, 15, 4, tzinfo=UTC)
DURING = datetime(2026, 10, 10, 4, tzinfo=UTC)
EDGE = datetime(2026, 9, 30, 17, tzinfo=UTC)  # 01:00 on 1 October, local: inside
AFTER = datetime(2026, 11, 2, 4, tzinfo=UTC)


def _weighed(client, world, clock) -> None:
    """What was weighed (0-point rates: the points are the ledger's own, posted in _activity). Kilograms
    come from these records, never from the points."""
    w = Weighed(client, world, clock)
    edge = w.recycling_day(EDGE, [("kitchen", "厨余", "kg", 0)])
    w.weigh(edge, EDGE, 0, "kitchen", 1500)
    during = w.recycling_day(DURING, [("paper", "纸类", "kg", 0), ("battery", "电池", "kg", 0)])
    w.weigh(during, DURING, 0, "paper", 2300)
    w.weigh(during, DURING, 0, "battery", 400)
    before = w.recycling_day(BEFORE, [("kitchen", "厨余", "kg", 0)])
    w.weigh(before, BEFORE, 1, "kitchen", 3000)


def _activity(engine, world, client=None, clock=None) -> None:
    h0, h1, h5 = world.households[0], world.households[1], world.households[5]
    if clock is not None:
        _weighed(client, world, clock)
    earn(engine, h0, 50, when=BEFORE)  # opening 50
    earn(engine, h0, 10, when=EDGE)
    earn(engine, h0, 7, when=DURING, source="recycling")
    earn(engine, h0, 3, when=DURING, source="recycling")
    wrong = earn(engine, h0, 4, when=DURING)
    with Session(engine) as s:  # a mistaken check-in, reversed now (December): October keeps it, a closed month never changes
        source = ledger.get_entry(s, wrong).source
        ledger.reverse(s, wrong, reason="扫错了", actor_user_id=None, idempotency_key=f"rev:{wrong}")
        s.commit()
    assert source == "checkin"
    spend(engine, h0, 20)  # occurred now, which is after October: not in the period
    earn(engine, h0, 99, when=AFTER)  # after the period: not in closing
    earn(engine, h1, 30, when=BEFORE, source="compost")
    earn(engine, h1, 5, when=DURING, source="volunteer")
    expire(engine, h1, 12, DURING)
    earn(engine, h5, 8, when=DURING, source="adjustment")


def _rows(text: str) -> list[list[str]]:
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:])))


def test_csv_has_every_figure_per_household_and_subtotals(client, world, engine, clock):
    _activity(engine, world, client, clock)
    r = client.get(f"/api/v1/communities/{world.community.id}/reports/point-totals",
                   params={"month": "2026-10"}, headers=world.h("committee"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = _rows(r.content.decode("utf-8"))
    header = rows[0]
    assert header[:7] == ["层级", "社区", "小区", "楼栋", "单元", "门牌", "户数"]
    col = {name: i for i, name in enumerate(header)}
    households = [r for r in rows if r[0] == "户"]
    assert len(households) == len(world.households)
    first = households[0]
    assert (first[3], first[4], first[5]) == ("1号楼", "1", "101")
    fig = lambda row, name: float(row[col[name]])  # noqa: E731
    assert fig(first, "期初积分") == 50
    assert fig(first, "获得·桶边打卡") == 14
    assert fig(first, "获得·资源回收日") == 10
    assert fig(first, "获得合计") == 24
    assert fig(first, "兑换消耗") == 0
    assert fig(first, "期末积分") == 74
    assert fig(first, "厨余减量(kg)") == 1.5
    assert fig(first, "可回收物减量(kg)") == 2.3
    assert fig(first, "有害垃圾减量(kg)") == 0.4
    second = households[1]
    assert fig(second, "期初积分") == 30 and fig(second, "获得·志愿服务") == 5
    assert fig(second, "过期清零") == 12 and fig(second, "期末积分") == 23
    assert fig(second, "厨余减量(kg)") == 0  # the compost was in September
    sixth = households[5]
    assert (sixth[3], sixth[5]) == ("2号楼", "201") and fig(sixth, "获得·人工调整") == 8
    # Every row adds up.
    for row in rows[1:]:
        assert fig(row, "期末积分") == fig(row, "期初积分") + fig(row, "获得合计") - fig(row, "兑换消耗") - fig(row, "过期清零")
    subtotals = [r for r in rows if r[0] == "楼栋小计"]
    assert [s[3] for s in subtotals] == ["1号楼", "2号楼"]
    assert fig(subtotals[0], "期末积分") == 97 and subtotals[0][col["户数"]] == "4"
    assert fig(subtotals[1], "期末积分") == 8
    community = [r for r in rows if r[0] == "社区合计"]
    assert len(community) == 1 and fig(community[0], "期末积分") == 105 and community[0][col["户数"]] == "8"
    assert rows[-1][0] == "总计" and fig(rows[-1], "获得合计") == 24 + 5 + 8
    # Identified by door plate only: no phone, masked or not.
    text = r.content.decode("utf-8")
    for phone in world.phones.values():
        assert phone not in text and phone[-4:] + "," not in text


def test_rows_in_natural_order_each_subtotal_after_what_it_covers(client, world, engine, clock):
    # 10号楼 is created before 3号楼 and its 1001 before its 201: the listing still reads 3号楼, 10号楼 and 201, 1001.
    with Session(engine) as s:
        for name, plates in (("10号楼", ("1001", "201")), ("3号楼", ("101",))):
            building = Building(name=name, compound_id=world.compound.id, community_id=world.community.id)
            s.add(building)
            s.flush()
            for plate in plates:
                s.add(Household(community_id=world.community.id, building_id=building.id, unit="1", door_plate=plate,
                                members=2, public_code=new_public_code(s)))
                s.flush()
        s.commit()
    w = Weighed(client, world, clock)
    w.weigh(w.recycling_day(DURING, [("kitchen", "厨余", "kg", 0)]), DURING, 0, "kitchen", 1500)
    r = client.get(f"/api/v1/communities/{world.community.id}/reports/point-totals",
                   params={"month": "2026-10"}, headers=world.h("committee"))
    rows = _rows(r.content.decode("utf-8"))[1:]
    assert [(row[0], row[3], row[5]) for row in rows] == [
        *(("户", "1号楼", f"{i}01") for i in range(1, 5)), ("楼栋小计", "1号楼", ""),
        *(("户", "2号楼", f"{i}01") for i in range(1, 5)), ("楼栋小计", "2号楼", ""),
        ("户", "3号楼", "101"), ("楼栋小计", "3号楼", ""),
        ("户", "10号楼", "201"), ("户", "10号楼", "1001"), ("楼栋小计", "10号楼", ""),
        ("社区合计", "", ""), ("总计", "", ""),
    ]
    header = _rows(r.content.decode("utf-8"))[0]
    kg = header.index("厨余减量(kg)")
    # Kilograms with three decimals, the same characters whichever database wrote the line.
    assert rows[0][kg] == "1.500" and rows[1][kg] == "0.000" and rows[-1][kg] == "1.500"
    assert rows[-1][header.index("户数")] == "11"


def test_closing_of_the_current_period_is_the_balance(client, world, engine):
    _activity(engine, world)
    r = client.get(f"/api/v1/communities/{world.community.id}/reports/point-totals",
                   params={"start": "2026-01-01", "end": "2030-12-31"}, headers=world.h("committee"))
    rows = _rows(r.content.decode())
    households = [r for r in rows if r[0] == "户"]
    with Session(engine) as s:
        balance = ledger.balance_of(s, world.households[0].id)
    assert balance == 50 + 10 + 10 + 99 - 20
    assert float(households[0][rows[0].index("期末积分")]) == balance


def test_xlsx_has_a_sheet_per_level_with_frozen_chinese_headers(client, world, engine, clock):
    _activity(engine, world, client, clock)
    r = client.get(f"/api/v1/communities/{world.community.id}/reports/point-totals",
                   params={"month": "2026-10", "format": "xlsx"}, headers=world.h("org_admin"))
    assert r.status_code == 200, r.text
    wb = openpyxl.load_workbook(io.BytesIO(r.content))
    assert wb.sheetnames == ["户明细", "楼栋小计", "社区合计", "说明"]
    ws = wb["户明细"]
    assert ws.freeze_panes == "F5"
    header = [c.value for c in ws[4]]  # under the title rows: one header row
    assert header[:5] == ["社区", "小区", "楼栋", "单元", "门牌"] and "期末积分" in header
    first = [c.value for c in ws[5]]
    # October keeps the check-in reversed in December (a closed month never changes): 70 + 4
    assert first[header.index("期末积分")] == 74 and first[header.index("其中预约冻结")] == 0 and first[header.index("厨余减量(kg)")] == 1.5
    assert ws.cell(5, header.index("期末积分") + 1).number_format == "#,##0"
    assert ws.cell(5, header.index("厨余减量(kg)") + 1).number_format == "#,##0.000"
    assert ws.max_row == 4 + len(world.households)
    for sheet in wb.sheetnames[:3]:  # the scope and the period in the title; A4, titles repeated, fitted to width
        t = wb[sheet]
        assert world.community.name in t["A1"].value and "2026-10-01 至 2026-10-31" in t["A2"].value, sheet
        assert (t.page_setup.paperSize, t.print_title_rows, t.page_setup.fitToHeight) == (9, "$1:$4", 0), sheet
        assert t.sheet_properties.pageSetUpPr.fitToPage, sheet
    b = wb["楼栋小计"]
    assert [row[2] for row in b.iter_rows(min_row=5, values_only=True)] == ["1号楼", "2号楼"]
    c = list(wb["社区合计"].iter_rows(min_row=5, values_only=True))
    assert c[0][0] == world.community.name and c[-1][0] == "总计" and c[-1][1] == 8
    assert "2026-10-01 至 2026-10-31" in [row[1] for row in wb["说明"].iter_rows(values_only=True)]


def test_street_and_organisation_scopes(client, world, other_world, engine):
    _activity(engine, world)
    street = client.get(f"/api/v1/streets/{world.street.id}/reports/point-totals", params={"month": "2026-10"},
                        headers=world.h("street_viewer"))
    assert street.status_code == 200
    assert len([r for r in _rows(street.content.decode()) if r[0] == "户"]) == len(world.households)
    org = client.get(f"/api/v1/organisations/{world.organisation.id}/reports/point-totals", params={"month": "2026-10"},
                     headers=world.h("org_admin"))
    assert org.status_code == 200 and "社区合计" in org.content.decode()
    # A committee reads its community, not the street; nobody reads another street or organisation.
    assert client.get(f"/api/v1/streets/{world.street.id}/reports/point-totals", headers=world.h("committee")).status_code == 403
    assert client.get(f"/api/v1/streets/{world.street.id}/reports/point-totals", headers=other_world.h("street_viewer")).status_code == 403
    assert client.get(f"/api/v1/organisations/{world.organisation.id}/reports/point-totals", headers=other_world.h("org_admin")).status_code == 403
    assert client.get(f"/api/v1/communities/{world.community.id}/reports/point-totals", headers=world.h("volunteer")).status_code == 403
    assert client.get(f"/api/v1/communities/{world.community.id}/reports/point-totals", headers=world.h("resident")).status_code == 403


def test_every_export_is_audited(client, world):
    for fmt in ("csv", "xlsx"):
        r = client.get(f"/api/v1/communities/{world.community.id}/reports/point-totals",
                       params={"month": "2026-10", "format": fmt}, headers=world.h("committee"))
        assert r.status_code == 200
    with Session(world.engine) as s:
        rows = s.exec(select(AuditLog).where(AuditLog.community_id == world.community.id,
                                             AuditLog.action == "reports.export_totals")).all()
    assert [(a.actor_user_id, a.detail["format"], a.detail["start"]) for a in rows] == [
        (world.users["committee"], "csv", "2026-10-01"), (world.users["committee"], "xlsx", "2026-10-01")]


def test_bad_periods_are_refused_in_chinese(client, world):
    url = f"/api/v1/communities/{world.community.id}/reports/point-totals"
    r = client.get(url, params={"start": "2026-10-05", "end": "2026-10-01"}, headers=world.h("committee"))
    assert r.status_code == 400 and r.json()["error"]["message"] == "结束日期早于开始日期"
    r = client.get(url, params={"month": "2026-13"}, headers=world.h("committee"))
    assert r.status_code == 400
    r = client.get(url, params={"month": "2026-10", "start": "2026-10-01"}, headers=world.h("committee", **{"Accept-Language": "en"}))
    assert r.status_code == 400 and "either" in r.json()["error"]["message"]


def test_cli_writes_the_file_and_audits(client, world, engine, tmp_path):
    _activity(engine, world)
    out = tmp_path / "totals.xlsx"
    res = CliRunner().invoke(cli, ["reports", "export-totals", "--community", str(world.community.id),
                                   "--month", "2026-10", "-o", str(out)])
    assert res.exit_code == 0, res.output
    ws = openpyxl.load_workbook(out)["户明细"]
    assert ws.max_row == 4 + len(world.households)
    csv_out = tmp_path / "street.csv"
    res = CliRunner().invoke(cli, ["reports", "export-totals", "--street", str(world.street.id), "--month", "2026-10", "-o", str(csv_out)])
    assert res.exit_code == 0 and csv_out.read_bytes().startswith(b"\xef\xbb\xbf")
    assert "Writing street.csv" in res.output  # the Rich progress line (bytes written, time)
    bad = CliRunner().invoke(cli, ["reports", "export-totals", "--community", "999999999", "-o", str(csv_out)])
    assert bad.exit_code == 1
