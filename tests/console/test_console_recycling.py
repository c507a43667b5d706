"""A recycling day run from the console in Chromium: the rate table set on its page, then the weigh-in
desk (a household by its door-plate code, a walk-in paid with a printed cheque), the day's totals and
where a batch went (去向); each step checked through the API."""

from __future__ import annotations

from app.identity.models import Role
from tests.browser import staff_with_password
from tests.clock import NOON
from tests.console.test_console_browser import Console
from tests.field import local_day, payload


def test_a_recycling_day_at_the_weigh_in_desk(client, world, engine, live_server, chromium, clock):
    clock.set_local(NOON)
    c = world.community.id
    committee = world.h("committee")
    console = Console(chromium, live_server, "desktop")
    page = console.page
    console.sign_in(staff_with_password(engine, Role.committee, c, "居委会"))

    # The rate table: paper at 5 points a kilogram.
    console.go("recycling")
    page.click(".el-tabs__item:has-text('回收价目')")
    rate = page.locator("#pane-rates form")
    rate.locator("input").nth(0).fill("paper")
    rate.locator("input").nth(1).fill("废纸")
    console.number("#pane-rates .el-input-number input", 5)
    rate.locator("button:has-text('保存')").click()
    page.wait_for_selector("#pane-rates td:has-text('废纸')")
    assert [(r["code"], r["unit"], r["points"]) for r in client.get(f"/api/v1/communities/{c}/recycling-rates", headers=committee).json()["items"]] == [("paper", "kg", 5)]

    # Today's recycling day (the schedule page makes them; one is enough here).
    day = client.post(f"/api/v1/communities/{c}/recycling-events", headers=committee, json={
        "occurs_on": local_day().isoformat(), "start_time": "00:00", "end_time": "23:59", "place": "社区广场", "name": "回收日"})
    assert day.status_code == 201, day.text
    page.reload()
    page.click(".el-tabs__item:has-text('称重台')")
    console.pick("#pane-desk .el-select", "回收日")
    console.pick("#pane-desk form .el-select", "废纸")

    # A household by its door-plate code: 2.4 kg of paper, 12 points.
    page.fill("#pane-desk form .el-input input", payload(world, 1))
    console.number("#pane-desk form .el-input-number input", 2.4)
    page.click("#pane-desk button:has-text('记录')")
    console.says("已记录，12 积分")

    # A walk-in: 1 kg, paid with a cheque whose code is shown to print.
    page.click("#pane-desk .el-switch")
    console.number("#pane-desk form .el-input-number input", 1)
    page.click("#pane-desk button:has-text('记录')")
    page.wait_for_selector("#pane-desk .el-alert:has-text('已开具积分支票')")
    cheques = client.get(f"/api/v1/communities/{c}/vouchers", headers=committee).json()["items"]
    assert [(v["points"], v["status"]) for v in cheques] == [(5, "outstanding")]

    # The day's totals, and where the paper went.
    page.wait_for_selector("#pane-desk td:has-text('3.40')")
    dest = page.locator("#pane-desk form").nth(1)
    dest.locator(".el-select").first.click()
    page.click(".el-select-dropdown__item:visible:has-text('废纸')")
    dest.locator(".el-input-number input").fill("3.4")
    dest.locator(".el-form-item:has-text('去向') input").last.fill("昆山再生资源公司")
    dest.locator("button:has-text('添加')").click()
    page.wait_for_selector("#pane-desk td:has-text('昆山再生资源公司'), .el-message--error")
    assert page.locator(".el-message--error").count() == 0, page.inner_text(".el-message--error")
    went = client.get(f"/api/v1/recycling-events/{day.json()['id']}/destinations", headers=committee).json()["items"]
    assert [(d["category"], d["quantity_g"], d["destination"]) for d in went] == [("paper", 3400, "昆山再生资源公司")]
    totals = client.get(f"/api/v1/recycling-events/{day.json()['id']}/totals", headers=committee).json()["items"]
    assert [(t["category"], t["weight_g"], t["weigh_ins"]) for t in totals] == [("paper", 3400, 2)]
    assert console.errors == []
