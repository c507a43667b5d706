"""The committee dashboard in a real browser: Playwright drives Debian's Chromium against a live server.

Signs in with a password, opens the dashboard of a seeded community, reads back what ECharts drew
(each chart's option) and saves a screenshot under test-artifacts/.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from app.identity.models import Role
from tests.clock import NOON
from tests.field import SHANGHAI
from tests.ledger.helpers import earn, spend
from tests.reports.records import at, codes, scan, setup_field, upload
from tests.reports.weighed import Weighed
from tests.support import PASSWORD, staff_with_password

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def test_dashboard_draws_the_community_figures(client, world, engine, live_server, clock):
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: scripts/test.sh installs it (apt-get install -y chromium)", pytrace=False)
    # Noon: "today", "yesterday" and this month are the same days for the records, the server and the
    # assertions, however long the test takes (the page takes its days from the server, not the browser).
    now = clock.set_local(NOON)
    h = world.households
    recent = now - timedelta(seconds=30)  # weights all in this local month
    earn(engine, h[0], 5, when=recent)
    earn(engine, h[0], 5, when=recent)
    earn(engine, h[1], 5, when=now - timedelta(days=1, hours=1))
    earn(engine, h[2], 7, when=recent, source="recycling")
    # The kilograms are what was weighed (at 0-point rates: the points above are the test's own).
    w = Weighed(client, world, clock)
    day = w.recycling_day(recent, [("kitchen", "厨余", "kg", 0), ("paper", "纸类", "kg", 0)])
    for who, code, grams in ((0, "kitchen", 1500), (0, "kitchen", 500), (2, "paper", 2300)):
        w.weigh(day, recent, who, code, grams)
    spend(engine, h[0], 4)
    # Check-ins as the volunteers record them, right and wrong: yesterday 2 of 4 checks correct
    # (households 0–2 of 1号楼), the day before 1 of 1 (household 4, in 2号楼).
    st = setup_field(client, world)["station_id"]
    c = codes(world, h[:5])
    results = upload(client, world, [
        scan(st, c[0], at(1, 7, 30)), scan(st, c[1], at(1, 7, 40), "incorrect"),
        scan(st, c[1], at(1, 19)), scan(st, c[2], at(1, 19, 10), "incorrect"), scan(st, c[4], at(2, 8)),
    ])
    assert [r["status"] for r in results] == ["accepted"] * 5
    scan_points = sum(r["points"] for r in results)
    # Compost: one bin opened today, 2.5 kg harvested.
    keeper = world.h("compost_keeper")
    site = client.post(f"/api/v1/communities/{world.community.id}/compost-sites", json={"name": "堆肥点"}, headers=keeper).json()
    bin_id = client.post(f"/api/v1/compost-sites/{site['id']}/bins", json={"name": "1号箱", "method": "box", "capacity_l": 200},
                         headers=keeper).json()["id"]
    for step in ("close", "ready"):
        assert client.post(f"/api/v1/compost-bins/{bin_id}/{step}", headers=keeper).status_code == 200
    assert client.post(f"/api/v1/compost-bins/{bin_id}/harvest", json={"compost_g": 2500}, headers=keeper).status_code == 201
    username, password = staff_with_password(engine, Role.committee, world.community.id), PASSWORD

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        page.goto(f"{live_server}/reports/dashboard?community={world.community.id}")
        page.fill("#username", username)
        page.fill("#password", password)
        page.click("#sign-in")
        page.wait_for_selector(f"body[data-ready='{world.community.id}']", timeout=15000)
        option = lambda name: page.evaluate(f"window.charts['{name}'].getOption()")  # noqa: E731

        kg = option("kg")
        assert [s["name"] for s in kg["series"]] == ["厨余垃圾", "可回收物", "有害垃圾", "其他垃圾"]  # the city's names (苏州: the standard's)
        this_month = {s["name"]: s["data"][-1] for s in kg["series"]}
        assert this_month == {"厨余垃圾": 2.0, "可回收物": 2.3, "有害垃圾": 0, "其他垃圾": 0}

        checkins = option("checkins")
        days = checkins["xAxis"][0]["data"]
        checks, accuracy = checkins["series"][0]["data"], checkins["series"][1]["data"]
        yesterday, before = at(1, 12).strftime("%m-%d"), at(2, 12).strftime("%m-%d")
        assert sum(checks) == 5  # every check, correct or not (the ledger's check-in credits are not checks)
        assert checks[days.index(yesterday)] == 4 and accuracy[days.index(yesterday)] == 0.5
        assert checks[days.index(before)] == 1 and accuracy[days.index(before)] == 1.0
        assert accuracy[days.index(now.astimezone(SHANGHAI).strftime("%m-%d"))] is None  # no check today

        participation = option("participation")
        assert participation["xAxis"][0]["data"] == ["1号楼", "2号楼"]
        assert participation["series"][0]["data"] == [0.75, 0.25]  # 3 of 4 households in 1号楼, 1 of 4 in 2号楼

        points = option("points")
        assert points["series"][0]["name"] == "发放" and sum(points["series"][0]["data"]) == 22 + scan_points
        assert sum(points["series"][1]["data"]) == 4

        compost = option("compost")
        assert compost["series"][0]["data"][-1] == 2.5 and sum(compost["series"][0]["data"]) == 2.5

        # The export buttons download files the browser can save; the month is the server's, by default.
        assert page.input_value("#month") == now.strftime("%Y-%m")
        with page.expect_download() as download:
            page.click("#download-csv")
        assert download.value.suggested_filename.endswith(".csv")

        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        browser.close()


def test_dashboard_figures_are_scoped(client, world, other_world):
    url = f"/api/v1/communities/{world.community.id}/reports/dashboard"
    assert client.get(url, headers=world.h("committee")).status_code == 200
    assert client.get(url, headers=world.h("street_viewer")).status_code == 200
    assert client.get(url, headers=world.h("volunteer")).status_code == 403
    assert client.get(url, headers=other_world.h("committee")).status_code == 403
    assert client.get("/static/echarts.min.js").headers["content-type"].startswith("text/javascript")
