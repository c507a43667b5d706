"""One source per figure (issue 16, the waste side): a month built through the HTTP API with known sums
shows the same kilograms in the monthly report (JSON, XLSX, HTML), the recycling day's totals, the
point-totals export, the dashboard and the passbook totals; the categories add up to the total; the
cumulative is the previous month's cumulative plus this month; every figure's drill-down lists exactly
the records counted; a category's waste group is data the committee sets.

The recycling day on 10 October (local) weighs 10.0 kg of recyclables and 18.0 kg of hazardous waste:
paper 4.0 kg (household 0, 20 points), 0.18 kg (household 1, 0 points at 5 points/kg), 2.82 kg and
3.0 kg by walk-ins paid with points cheques (the first claimed later by household 3, the second never);
batteries 3.0 kg (household 2, 60 points cut to the daily cap of 50), paint 4.0 kg (household 2 again,
over the cap: 0 points) and 11.0 kg (household 4, capped); a walk-in's 1.0 kg of batteries reversed.
"""

from __future__ import annotations

import csv
import io
import uuid
from datetime import datetime, timedelta

import openpyxl
from sqlmodel import Session, select

from app.audit.models import AuditLog
from tests.field import SHANGHAI
from tests.reports.weighed import Weighed


def _local(day: str, hour: int, minute: int = 0) -> datetime:
    return datetime.fromisoformat(f"{day}T{hour:02d}:{minute:02d}").replace(tzinfo=SHANGHAI)


SEPT = _local("2026-09-20", 10)
DAY = _local("2026-10-10", 9, 30)
NOV = _local("2026-11-03", 10)
OCT_KG = {"kitchen": 3800, "recyclable": 10000, "hazardous": 18000, "other": 250}  # grams, worked out in _month
SEPT_KG = {"kitchen": 1200, "recyclable": 0, "hazardous": 0, "other": 0}


def _month(client, world, clock) -> dict:
    """The records of the module's docstring, compost and check-ins around them; their ids."""
    w = Weighed(client, world, clock)
    c = world.community.id
    committee = world.h("committee")
    with w.at(_local("2026-10-01", 0, 5)):  # the daily cap, in force for the month
        r = client.post(f"/api/v1/communities/{c}/points-rules", json={"daily_cap": 50}, headers=world.h("committee"))
        assert r.status_code == 201, r.text
    for code, name, points in (("paper", "纸类", 5), ("battery", "电池", 20), ("paint", "废油漆", 5)):
        r = client.put(f"/api/v1/communities/{c}/recycling-rates/{code}", json={"name": name, "unit": "kg", "points": points},
                       headers=committee)
        assert r.status_code == 201, r.text
    day = w.recycling_day(DAY, [("paper", "纸类", "kg", 5), ("battery", "电池", "kg", 20), ("paint", "废油漆", "kg", 5)])
    ids: dict = {"event": day}
    paper0 = w.weigh(day, DAY, 0, "paper", 4000)
    zero = w.weigh(day, DAY, 1, "paper", 180)
    claimed = w.weigh(day, DAY, None, "paper", 2820)
    unclaimed = w.weigh(day, DAY, None, "paper", 3000)
    battery = w.weigh(day, DAY, 2, "battery", 3000)
    over_cap = w.weigh(day, DAY, 2, "paint", 4000)
    capped = w.weigh(day, DAY, 4, "paint", 11000)
    wrong = w.weigh(day, DAY, None, "battery", 1000)
    w.reverse_weigh_in(wrong["id"], when=DAY + timedelta(hours=3))  # corrected within the month
    assert (zero["points"], battery["points"], over_cap["points"], capped["points"]) == (0, 50, 0, 50)
    assert claimed["voucher_code"] and unclaimed["voucher_code"]
    w.claim(claimed["voucher_code"], 3)
    ids["recyclable"] = {paper0["id"], zero["id"], claimed["id"], unclaimed["id"]}
    ids["hazardous"] = {battery["id"], over_cap["id"], capped["id"]}
    ids["wrong_weigh_in"] = wrong["id"]
    # Compost: 1.2 kg in September, 2.0 + 1.0 kg in October (a 1.5 kg drop reversed), 0.999 kg in November.
    ids["sept_drop"] = w.drop(SEPT, 1, 1200)["id"]
    ids["drops"] = {w.drop(_local("2026-10-12", 10), 5, 2000)["id"], w.drop(_local("2026-10-20", 10), 6, 1000)["id"]}
    ids["wrong_drop"] = w.drop(_local("2026-10-12", 11), 5, 1500)["id"]
    w.reverse_drop(ids["wrong_drop"], when=_local("2026-10-13", 9))
    w.drop(NOV, 7, 999)
    # Check-ins with a weight: 0.8 kg kitchen (correct), 0.25 kg other (correct); 0.5 kg sorted wrongly
    # (household 0 took part, its bag is not sorted waste); 0.3 kg reversed.
    ids["checkins"] = {
        w.checkin(_local("2026-10-11", 7, 30), 7, 800)["checkin_id"],
        w.checkin(_local("2026-10-11", 7, 40), 6, 250, category="other")["checkin_id"],
    }
    ids["incorrect"] = w.checkin(_local("2026-10-11", 7, 50), 0, 500, result="incorrect")["checkin_id"]
    ids["wrong_checkin"] = w.checkin(_local("2026-10-11", 8, 0), 1, 300)["checkin_id"]
    w.reverse_checkin(ids["wrong_checkin"], when=_local("2026-10-11", 9))
    ids["bin"] = w.bin()
    return ids


def _report(client, world, month: str, fmt: str = "json"):
    r = client.get(f"/api/v1/streets/{world.street.id}/reports/monthly", params={"month": month, "format": fmt},
                   headers=world.h("street_viewer"))
    assert r.status_code == 200, r.text
    return r


def _figures(report: dict) -> dict:
    return {f["key"]: (f["this_month"], f["cumulative"]) for f in [*report["figures"], *report["waste_by_category"]]}


def _kg(grams: int) -> float:
    return round(grams / 1000, 3)


def test_every_place_shows_the_same_kilograms(client, world, engine, clock):
    ids = _month(client, world, clock)
    total = sum(OCT_KG.values())

    # The recycling day's own totals: 10.0 kg of recyclables, 18.0 kg of hazardous waste.
    day = client.get(f"/api/v1/recycling-events/{ids['event']}/totals", headers=world.h("clerk")).json()["items"]
    by_code = {t["category"]: t for t in day}
    assert {c: (t["waste_group"], t["weight_g"]) for c, t in by_code.items()} == {
        "battery": ("hazardous", 3000), "paint": ("hazardous", 15000), "paper": ("recyclable", 10000)}
    assert (by_code["paper"]["weigh_ins"], by_code["paper"]["walk_ins"], by_code["paper"]["households"]) == (4, 2, 3)
    assert by_code["paint"]["points"] == 50 and by_code["battery"]["households"] == 1

    # The monthly report (JSON): every group from the records; the categories add up to the total.
    october = _figures(_report(client, world, "2026-10").json())
    september = _figures(_report(client, world, "2026-09").json())
    for group, grams in OCT_KG.items():
        assert october[f"waste_{group}_kg"] == (_kg(grams), _kg(grams + SEPT_KG[group]))
        # Cumulative = the previous month's cumulative + this month.
        assert october[f"waste_{group}_kg"][1] == round(september[f"waste_{group}_kg"][1] + october[f"waste_{group}_kg"][0], 3)
    assert october["waste_reduced_kg"] == (_kg(total), _kg(total + 1200))
    assert round(sum(october[f"waste_{g}_kg"][0] for g in OCT_KG) * 1000) == total
    # Households 0–7 all took part in October (3 by claiming a cheque, 0 by an incorrect check); in September only 1.
    assert october["participating_households"] == (8, 8) and september["participating_households"] == (1, 1)

    # The XLSX and the printable page say the same.
    book = openpyxl.load_workbook(io.BytesIO(_report(client, world, "2026-10", "xlsx").content))
    main = {row[0]: row[1:] for row in book["月报"].iter_rows(min_row=4, values_only=True) if row[0]}
    assert main["垃圾减量合计"] == ("kg", _kg(total), _kg(total + 1200))
    assert main["有害垃圾减量"] == ("kg", 18.0, 18.0) and main["可回收物减量"] == ("kg", 10.0, 10.0)
    assert main["参与家庭"] == ("户", 8, 8)
    html = _report(client, world, "2026-10", "html").text
    assert f"{total / 1000:,.3f}" in html and "18.000" in html and "10.000" in html

    # The point-totals export: households' kilograms plus the walk-ins nobody claimed = the report's.
    r = client.get(f"/api/v1/communities/{world.community.id}/reports/point-totals", params={"month": "2026-10"},
                   headers=world.h("committee"))
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8")[1:])))
    col = {name: i for i, name in enumerate(rows[0])}
    heads = {"kitchen": "厨余减量(kg)", "recyclable": "可回收物减量(kg)", "hazardous": "有害垃圾减量(kg)", "other": "其他垃圾减量(kg)"}
    grand = rows[-1]
    assert grand[0] == "总计" and {g: float(grand[col[h]]) for g, h in heads.items()} == {g: _kg(v) for g, v in OCT_KG.items()}
    walk_ins = [row for row in rows if row[0] == "走访居民（积分支票未领取）"]
    assert len(walk_ins) == 1 and float(walk_ins[0][col["可回收物减量(kg)"]]) == 3.0
    households = {row[5] + "@" + row[3]: row for row in rows if row[0] == "户"}
    assert float(households["401@1号楼"][col["可回收物减量(kg)"]]) == 2.82  # household 3: the cheque it claimed, once
    assert float(households["101@1号楼"][col["可回收物减量(kg)"]]) == 4.0  # household 0: its incorrect check is not kg
    assert float(households["101@2号楼"][col["有害垃圾减量(kg)"]]) == 11.0  # household 4: capped, all of it
    community = [row for row in rows if row[0] == "社区合计"][0]
    assert float(community[col["有害垃圾减量(kg)"]]) == 18.0 and float(community[col["可回收物减量(kg)"]]) == 10.0

    # The dashboard's month.
    dash = client.get(f"/api/v1/communities/{world.community.id}/reports/dashboard", headers=world.h("committee")).json()
    months = {m["month"]: m["kg"] for m in dash["kg_by_month"]}
    assert months["2026-10"] == {g: _kg(v) for g, v in OCT_KG.items()} and months["2026-09"]["kitchen"] == 1.2

    # Every household's passbook totals, plus the unclaimed walk-in, add up to the report.
    summed = dict.fromkeys(OCT_KG, 0)
    for h in world.households:
        t = client.get(f"/api/v1/households/{h.id}/statement/totals", params={"start": "2026-10-01", "end": "2026-10-31"},
                       headers=world.h("committee")).json()
        for g, grams in t["grams_by_group"].items():
            summed[g] += grams
        assert sum(t["grams_by_category"].values()) == sum(t["grams_by_group"].values())
    summed["recyclable"] += 3000
    assert summed == OCT_KG
    h3 = client.get(f"/api/v1/households/{world.households[3].id}/statement/totals", headers=world.h("committee")).json()
    assert h3["grams_by_category"] == {"paper": 2820}

    # Running figures leave reversed records out: the day's checks (4 scanned, 1 corrected) and a
    # compost bin's fed weight (1.2 + 2.0 + 1.0 + 0.999 kg, not the 1.5 kg drop reversed).
    stats = client.get(f"/api/v1/communities/{world.community.id}/checkins/stats", params={"start": "2026-10-11", "end": "2026-10-11"},
                       headers=world.h("committee")).json()
    assert (stats["checks"], stats["correct"], stats["participating_households"]) == (3, 2, 3)
    b = client.get(f"/api/v1/compost-bins/{ids['bin']}", headers=world.h("compost_keeper")).json()
    assert b["fed_g"] == 1200 + 2000 + 1000 + 999


def _all(client, world, measure: str, **params) -> list[dict]:
    """Every row of a street's drill-down, two to a page; each page carries the figure of them all."""
    rows, cursor, figure = [], None, None
    while True:
        r = client.get(f"/api/v1/streets/{world.street.id}/reports/monthly/records/{measure}",
                       params=params | {"limit": 2} | ({"cursor": cursor} if cursor else {}), headers=world.h("street_viewer"))
        assert r.status_code == 200, r.text
        page = r.json()
        assert figure in (None, page["figures"]) and page["measure"] == measure
        figure = page["figures"]
        rows += page["rows"]
        cursor = page["next_cursor"]
        if not cursor:
            return rows


def test_each_figure_lists_exactly_the_records_it_counts(client, world, engine, clock):
    ids = _month(client, world, clock)
    base = f"/api/v1/streets/{world.street.id}/reports/monthly"
    hazardous = _all(client, world, "waste_hazardous_kg", month="2026-10")
    assert {r["record_id"] for r in hazardous} == ids["hazardous"] and ids["wrong_weigh_in"] not in {r["record_id"] for r in hazardous}
    assert sum(r["grams"] for r in hazardous) == OCT_KG["hazardous"]
    assert {(r["door_plate"], r["building"], r["category_name"], r["waste_group_name"]) for r in hazardous} == {
        ("301", "1号楼", "电池", "有害垃圾"), ("301", "1号楼", "废油漆", "有害垃圾"), ("101", "2号楼", "废油漆", "有害垃圾")}
    recyclable = _all(client, world, "waste_recyclable_kg", month="2026-10")
    assert {r["record_id"] for r in recyclable} == ids["recyclable"]
    assert {(r["door_plate"], r["walk_in"]) for r in recyclable if r["walk_in"]} == {(None, True), ("401", True)}
    kitchen = _all(client, world, "waste_kitchen_kg", month="2026-10")
    assert {(r["kind"], r["record_id"]) for r in kitchen} == (
        {("compost_drop", i) for i in ids["drops"]} | {("checkin", min(ids["checkins"]))})
    every = _all(client, world, "waste_reduced_kg", month="2026-10")
    assert len(every) == 4 + 3 + 3 + 1 and sum(r["grams"] for r in every) == sum(OCT_KG.values())
    assert [r["at"] for r in every] == sorted(r["at"] for r in every)  # in the order they happened, across pages
    cumulative = _all(client, world, "waste_kitchen_kg", month="2026-10", cumulative="true")
    assert {r["record_id"] for r in cumulative if r["kind"] == "compost_drop"} == ids["drops"] | {ids["sept_drop"]}
    people = _all(client, world, "participating_households", month="2026-10")
    assert len(people) == 8
    by_plate = {(p["building"], p["door_plate"]): p for p in people}
    assert by_plate[("1号楼", "401")]["weigh_ins"] == 1  # the cheque it claimed
    assert (by_plate[("1号楼", "101")]["weigh_ins"], by_plate[("1号楼", "101")]["checkins"]) == (1, 1)
    assert by_plate[("1号楼", "201")]["checkins"] == 0  # its check-in was reversed
    text = str(every) + str(people)
    assert not any(phone in text for phone in world.phones.values()) and "phone" not in text

    # The XLSX: a 明细 sheet per measure, its total row equal to the figure.
    book = openpyxl.load_workbook(io.BytesIO(_report(client, world, "2026-10", "xlsx").content))
    assert {"明细-垃圾减量合计", "明细-厨余垃圾", "明细-可回收物", "明细-有害垃圾", "明细-其他垃圾", "明细-参与家庭"} <= set(book.sheetnames)
    printed = book["明细-有害垃圾"]
    # The workbook's layout (app.reports.workbook): the name and period in the title rows, repeated on every page.
    assert (printed.page_setup.paperSize, printed.page_setup.orientation, printed.print_title_rows) == (9, "landscape", "$1:$4")
    assert world.street.name in printed["A1"].value and "2026年10月" in printed["A1"].value
    sheet = list(book["明细-有害垃圾"].iter_rows(values_only=True))
    header, lines = sheet[3], [row for row in sheet[4:] if row[0] is not None]
    records, totals = [row for row in lines if row[0] != "合计"], [row for row in lines if row[0] == "合计"]
    kg = header.index("重量(kg)")
    assert len(records) == 3 and round(sum(row[kg] for row in records), 3) == 18.0 and totals[0][kg] == 18.0
    assert isinstance(records[0][0], datetime) and records[0][0].date().isoformat() == "2026-10-10"
    assert {row[header.index("记录编号")] for row in records} == ids["hazardous"]
    households = [row for row in book["明细-参与家庭"].iter_rows(min_row=5, values_only=True) if row[0] and row[0] != "合计"]
    assert len(households) == 8

    # Same readers as the report; the first page is audited.
    org = f"/api/v1/organisations/{world.organisation.id}/reports/monthly/records"
    assert client.get(f"{org}/waste_other_kg", params={"month": "2026-10"}, headers=world.h("committee")).status_code == 403
    other = client.get(f"{org}/waste_other_kg", params={"month": "2026-10"}, headers=world.h("org_admin")).json()
    assert other["rows"][0]["grams"] == 250 and other["figures"] == {"waste_other_kg": 0.25}
    assert client.get(f"{org}/waste_kg", headers=world.h("org_admin")).status_code == 422
    assert client.get(f"{base}/records/waste_other_kg", params={"cursor": "nonsense!"}, headers=world.h("street_viewer")).status_code == 400
    assert client.get(f"{base}/records/activities", params={"cursor": "eyJvIjotMX0"}, headers=world.h("street_viewer")).status_code == 400
    with Session(engine) as s:
        assert s.exec(select(AuditLog).where(AuditLog.action == "reports.monthly_records", AuditLog.object_id == world.street.id)).first()


def test_a_later_correction_counts_in_its_own_month_and_october_never_changes(client, world, engine, clock):
    ids = _month(client, world, clock)
    capped = max(ids["hazardous"])  # 11.0 kg of paint, household 4 (the last hazardous weigh-in)
    october = _report(client, world, "2026-10").json()
    h4 = world.households[4].id
    totals = lambda **p: client.get(f"/api/v1/households/{h4}/statement/totals", params=p,  # noqa: E731
                                    headers=world.h("committee")).json()
    assert totals(start="2026-10-01", end="2026-10-31")["grams_by_group"]["hazardous"] == 11000

    # Corrected on 4 November: a wrong household, found a month later.
    w = Weighed(client, world, clock)
    w.reverse_weigh_in(capped, when=_local("2026-11-04", 10))

    # October, closed, says what it said: kilograms, households, points, definitions.
    again = _report(client, world, "2026-10").json()
    assert _figures(again) == _figures(october) and again["definitions"] == october["definitions"]
    # November carries the correction: −11.0 kg of hazardous waste this month, cumulative = October's + November's.
    november = _figures(_report(client, world, "2026-11").json())
    assert november["waste_hazardous_kg"] == (-11.0, 7.0)
    assert november["waste_kitchen_kg"] == (0.999, _kg(OCT_KG["kitchen"] + SEPT_KG["kitchen"] + 999))
    for key, (now, cumulative) in november.items():
        if key.startswith("waste_"):
            assert cumulative == round(_figures(october)[key][1] + now, 3), key
    # Its drill-down lists the correction, at the time it was made, weight and points negated.
    rows = _all(client, world, "waste_hazardous_kg", month="2026-11")
    assert [(r["record_id"], r["grams"], r["points"], r["reversal"], r["kind_name"], r["local_date"]) for r in rows] == [
        (capped, -11000, -50, True, "冲正·回收日称重", "2026-11-04")]
    # The dashboard's months and the household's passbook read the same; the day's running totals leave it out.
    months = {m["month"]: m["kg"] for m in client.get(f"/api/v1/communities/{world.community.id}/reports/dashboard",
                                                       headers=world.h("committee")).json()["kg_by_month"]}
    assert (months["2026-10"]["hazardous"], months["2026-11"]["hazardous"]) == (18.0, -11.0)
    assert totals(start="2026-10-01", end="2026-10-31")["grams_by_group"]["hazardous"] == 11000
    assert totals(start="2026-11-01", end="2026-11-30")["grams_by_group"]["hazardous"] == -11000
    assert totals()["grams_by_group"]["hazardous"] == 0
    day = {t["category"]: t["weight_g"] for t in client.get(f"/api/v1/recycling-events/{ids['event']}/totals",
                                                           headers=world.h("clerk")).json()["items"]}
    assert day["paint"] == 4000


def test_waste_groups_are_data_the_committee_sets(client, world, other_world, engine, clock):
    c = world.community.id
    committee = world.h("committee")
    put = lambda code, **extra: client.put(f"/api/v1/communities/{c}/recycling-rates/{code}",  # noqa: E731
                                          json={"name": code, "unit": "kg", "points": 1} | extra, headers=committee)
    assert put("paint").json()["waste_group"] == "hazardous"  # 废油漆: hazardous by default, not a recyclable
    assert put("clothes").json()["waste_group"] == "recyclable"
    assert put("cooking_oil", waste_group="kitchen").json()["waste_group"] == "kitchen"
    # The committee moves one of its categories; the report follows.
    w = Weighed(client, world, clock)
    when = _local("2026-10-10", 9, 30)
    day = w.recycling_day(when, [("clothes", "旧衣", "kg", 1), ("cooking_oil", "废食用油", "kg", 1)])
    w.weigh(day, when, 0, "clothes", 2500)
    w.weigh(day, when, 1, "cooking_oil", 700)
    report = _figures(_report(client, world, "2026-10").json())
    assert (report["waste_recyclable_kg"][0], report["waste_kitchen_kg"][0], report["waste_other_kg"][0]) == (2.5, 0.7, 0)
    url = f"/api/v1/communities/{c}/recycling-rates/clothes/waste-group"
    r = client.put(url, json={"waste_group": "other"}, headers=committee)
    assert r.status_code == 200 and (r.json()["waste_group"], r.json()["waste_group_name"]) == ("other", "其他垃圾")
    report = _figures(_report(client, world, "2026-10").json())
    assert (report["waste_recyclable_kg"][0], report["waste_other_kg"][0], report["waste_reduced_kg"][0]) == (0, 2.5, 3.2)
    day_totals = {t["category"]: t["waste_group"] for t in client.get(f"/api/v1/recycling-events/{day}/totals", headers=committee).json()["items"]}
    assert day_totals == {"clothes": "other", "cooking_oil": "kitchen"}
    # Validated, scoped, audited with what it was.
    assert client.put(url, json={"waste_group": "compostable"}, headers=committee).status_code == 422
    assert client.put(url, json={"waste_group": "other"}, headers=world.h("volunteer")).status_code == 403
    assert client.put(url, json={"waste_group": "other"}, headers=other_world.h("committee")).status_code == 403
    missing = client.put(f"/api/v1/communities/{c}/recycling-rates/nothing/waste-group", json={"waste_group": "other"},
                         headers=world.h("committee", **{"Accept-Language": "en"}))
    assert missing.status_code == 404
    with Session(engine) as s:
        row = s.exec(select(AuditLog).where(AuditLog.action == "recycling_rate.waste_group", AuditLog.community_id == c)).one()
        assert (row.detail["before"], row.detail["after"], row.actor_user_id) == ("recyclable", "other", world.users["committee"])


def test_a_shanghai_community_reads_its_own_group_names(client, engine, clock):
    from app.places.models import Street
    from tests.support import World

    world = World.build(client, engine)
    with Session(engine) as s:
        street = s.get(Street, world.street.id)
        street.city, street.name = "上海市", f"上海测试街道-{uuid.uuid4().hex[:6]}"
        s.add(street)
        s.commit()
    c = world.community.id
    r = client.put(f"/api/v1/communities/{c}/recycling-rates/kitchen", json={"name": "厨余", "unit": "kg", "points": 0},
                   headers=world.h("committee"))
    assert (r.json()["waste_group"], r.json()["waste_group_name"]) == ("kitchen", "湿垃圾")
    w = Weighed(client, world, clock)
    w.drop(_local("2026-10-12", 10), 0, 1500)
    labels = {f["key"]: f["label"] for f in _report(client, world, "2026-10").json()["waste_by_category"]}
    assert labels["waste_kitchen_kg"] == "湿垃圾（厨余垃圾）减量" and labels["waste_other_kg"] == "干垃圾（其他垃圾）减量"
    assert labels["waste_hazardous_kg"] == "有害垃圾减量"
    dash = client.get(f"/api/v1/communities/{c}/reports/dashboard", headers=world.h("committee")).json()
    assert dash["waste_group_names"] == {"kitchen": "湿垃圾", "recyclable": "可回收物", "hazardous": "有害垃圾", "other": "干垃圾"}
    html = client.get(f"/api/v1/households/{world.households[0].id}/statement", params={"start": "2026-10-01", "format": "html"},
                      headers=world.h("committee")).text
    assert "湿垃圾 1.5 公斤" in html
