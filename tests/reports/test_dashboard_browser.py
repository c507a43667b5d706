"""The committee dashboard in a real browser: Playwright drives Debian's Chromium against a live server.

Signs in with a password, opens the dashboard of a seeded community, reads back what ECharts drew
(each chart's option) and saves a screenshot under test-artifacts/.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import uvicorn
from sqlmodel import Session

from app.core.db import utcnow
from app.core.security import hash_password
from app.identity.models import Role, RoleGrant, User
from tests.ledger.helpers import earn, spend

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
def live_server(engine):
    from app.main import app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def _committee_with_password(engine, community_id: int) -> tuple[str, str]:
    username, password = f"committee-{uuid.uuid4().hex[:8]}", "dash-pass-2026"
    with Session(engine) as s:
        user = User(username=username, display_name="居委会", password_hash=hash_password(password))
        s.add(user)
        s.flush()
        s.add(RoleGrant(user_id=user.id, role=Role.committee, community_id=community_id))
        s.commit()
    return username, password


def test_dashboard_draws_the_community_figures(world, engine, live_server, backend):
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: scripts/test.sh installs it (apt-get install -y chromium)", pytrace=False)
    h = world.households
    now = utcnow()
    recent = now - timedelta(seconds=30)  # weights all in this local month
    earn(engine, h[0], 5, when=recent, grams=1500, category="kitchen")
    earn(engine, h[0], 5, when=recent, grams=500, category="kitchen")
    earn(engine, h[1], 5, when=now - timedelta(days=1, hours=1))
    earn(engine, h[2], 7, when=recent, source="recycling", grams=2300, category="paper")
    spend(engine, h[0], 4)
    username, password = _committee_with_password(engine, world.community.id)

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
        assert [s["name"] for s in kg["series"]] == ["厨余", "可回收物", "有害垃圾", "其他垃圾"]
        this_month = {s["name"]: s["data"][-1] for s in kg["series"]}
        assert this_month == {"厨余": 2.0, "可回收物": 2.3, "有害垃圾": 0, "其他垃圾": 0}

        checkins = option("checkins")
        assert sum(checkins["series"][0]["data"]) == 3  # three credited check-ins in the last 30 days

        participation = option("participation")
        assert participation["xAxis"][0]["data"] == ["1号楼", "2号楼"]
        assert participation["series"][0]["data"] == [0.5, 0]  # 2 of 4 households in 1号楼

        points = option("points")
        assert points["series"][0]["name"] == "发放" and sum(points["series"][0]["data"]) == 22
        assert sum(points["series"][1]["data"]) == 4

        compost = option("compost")
        assert compost["title"][0]["text"] == "堆肥记录尚未接入"

        # The export buttons download files the browser can save.
        page.fill("#month", now.strftime("%Y-%m"))
        with page.expect_download() as download:
            page.click("#download-csv")
        assert download.value.suggested_filename.endswith(".csv")

        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"dashboard-{backend}.png"), full_page=True)
        browser.close()


def test_dashboard_figures_are_scoped(client, world, other_world):
    url = f"/api/v1/communities/{world.community.id}/reports/dashboard"
    assert client.get(url, headers=world.h("committee")).status_code == 200
    assert client.get(url, headers=world.h("street_viewer")).status_code == 200
    assert client.get(url, headers=world.h("volunteer")).status_code == 403
    assert client.get(url, headers=other_world.h("committee")).status_code == 403
    assert client.get("/static/echarts.min.js").headers["content-type"].startswith("text/javascript")
