"""The monthly report (月报): every figure from records with known sums; this month and cumulative apart."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import openpyxl
from sqlmodel import Session

from app.ledger import service as ledger
from tests.ledger.helpers import earn

SEPT = datetime(2026, 9, 20, 2, tzinfo=UTC)
OCT = datetime(2026, 10, 12, 2, tzinfo=UTC)
NOV = datetime(2026, 11, 3, 2, tzinfo=UTC)


def _records(engine, world) -> None:
    h = world.households
    earn(engine, h[0], 5, when=OCT, grams=1234, category="kitchen")
    earn(engine, h[1], 8, when=OCT, source="compost", grams=2000, category="kitchen")
    earn(engine, h[2], 6, when=OCT, source="recycling", grams=3001, category="paper")
    earn(engine, h[2], 2, when=OCT, source="recycling", grams=17, category="battery")
    earn(engine, h[3], 5, when=OCT, grams=5, category="other")
    wrong = earn(engine, h[5], 5, when=OCT, grams=700, category="kitchen")
    with Session(engine) as s:  # scanned the wrong household: reversed, it leaves no trace
        ledger.reverse(s, wrong, reason="扫错了", actor_user_id=None, idempotency_key=f"rev:{wrong}")
        s.commit()
    earn(engine, h[0], 5, when=SEPT, grams=1000, category="kitchen")
    earn(engine, h[4], 3, when=SEPT, source="recycling", grams=500, category="paper")
    earn(engine, h[6], 9, when=NOV, grams=9999, category="kitchen")  # after the month: in neither column
    with Session(engine) as s:
        ledger.post(s, community_id=world.community.id, idempotency_key=f"redeem:{h[0].id}", source="redemption",
                    memo="兑换", household_id=h[0].id, occurred_at=OCT,
                    lines=[ledger.Line(-10, household_id=h[0].id), ledger.Line(10, system=ledger.SystemAccount.redeemed)])
        s.commit()


def test_every_figure_adds_up_from_the_records(client, world, engine):
    _records(engine, world)
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
    assert figures["attendances"] == (5, 7)
    assert figures["points_issued"] == (5 + 8 + 6 + 2 + 5, 26 + 5 + 3)
    assert figures["points_redeemed"] == (10, 10)
    # What the system does not record yet is null and said so, never a guess.
    assert figures["activities"] == (None, None) and "activities" in report["unavailable"]
    assert figures["media_reads"] == (None, None)


def test_street_report_as_xlsx_and_printable_page(client, world, engine):
    _records(engine, world)
    url = f"/api/v1/streets/{world.street.id}/reports/monthly"
    x = client.get(url, params={"month": "2026-10", "format": "xlsx"}, headers=world.h("street_viewer"))
    assert x.status_code == 200 and "spreadsheetml" in x.headers["content-type"]
    ws = openpyxl.load_workbook(io.BytesIO(x.content))["月报"]
    rows = {row[0]: row[1:] for row in ws.iter_rows(min_row=4, values_only=True) if row[0]}
    assert list(ws.iter_rows(min_row=3, max_row=3, values_only=True))[0] == ("指标", "单位", "本月", "累计")
    assert rows["垃圾减量合计"] == ("kg", 6.257, 7.757)
    assert rows["厨余减量"] == ("kg", 3.234, 4.234)
    assert rows["活动记录"][1:] == ("未记录", "未记录")
    page = client.get(url, params={"month": "2026-10", "format": "html"}, headers=world.h("street_viewer"))
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "2026年10月月报" in html and "本月" in html and "累计（项目开始至本月末）" in html
    assert "6.257" in html and "7.757" in html and "其中：有害垃圾减量" in html


def test_monthly_report_scopes(client, world, other_world):
    org = f"/api/v1/organisations/{world.organisation.id}/reports/monthly"
    street = f"/api/v1/streets/{world.street.id}/reports/monthly"
    assert client.get(org, headers=world.h("committee")).status_code == 403
    assert client.get(street, headers=world.h("org_admin")).status_code == 403
    assert client.get(org, headers=other_world.h("org_admin")).status_code == 403
    assert client.get(street, headers=world.h("street_viewer")).status_code == 200
