"""Compost and volunteers from the console in Chromium: a keeper sets up a site and a bin, records two
households' drops and a reading, closes the bin, marks it ready, harvests it and hands a household its
share; a committee forms a volunteer team and a volunteer signs in and out of a shift. Each step is
checked through the API."""

from __future__ import annotations

from app.identity.models import Role
from tests.browser import staff_with_password
from tests.clock import NOON
from tests.console.test_console_browser import Console
from tests.field import payload


def test_a_compost_cycle_from_the_console(client, world, engine, live_server, chromium, clock):
    clock.set_local(NOON)
    c = world.community.id
    keeper = world.h("compost_keeper")
    console = Console(chromium, live_server, "desktop")
    page = console.page
    console.sign_in(staff_with_password(engine, Role.compost_keeper, c, "堆肥技师"))
    console.go("compost")
    page.fill("input[placeholder='堆肥点名称']", "北门堆肥点")
    page.click("button:has-text('添加堆肥点')")
    page.wait_for_selector(".el-collapse-item:has-text('北门堆肥点')")
    page.fill("input[placeholder='箱名']", "1号箱")
    page.click("button:has-text('添加堆肥箱')")
    page.click(".el-table__row:has-text('1号箱')")

    for index, kilograms in ((0, 2), (1, 1)):
        page.fill("input[placeholder='门牌码内容']", payload(world, index))
        console.number(".el-card .toolbar .el-input-number input", kilograms)
        page.click("button:has-text('记录投放')")
        page.wait_for_selector(f".el-card .el-table__row >> nth={index}")
    bin_id = client.get(f"/api/v1/communities/{c}/compost-bins", headers=keeper).json()["items"][0]["id"]
    drops = client.get(f"/api/v1/compost-bins/{bin_id}/drops", headers=keeper).json()["items"]
    assert sorted(d["weight_g"] for d in drops) == [1000, 2000]

    page.click(".el-tabs__item:has-text('巡检记录')")
    console.number(".el-card .el-tab-pane:visible .el-input-number input >> nth=0", 55)
    page.click(".el-card .el-tab-pane:visible button:has-text('添加')")
    page.wait_for_selector(".el-card .el-tab-pane:visible td:has-text('55')")

    page.click("button:has-text('封箱')")
    page.click("button:has-text('标记腐熟')")
    console.number(".el-card .el-card__body > .toolbar .el-input-number input", 3)
    page.click("button:has-text('开箱出肥')")
    page.click(".el-tabs__item:has-text('出肥与领取')")
    page.wait_for_selector(".el-tab-pane:visible td:has-text('2.00')")  # 2 of the 3 kg to the first household
    page.click(".el-tab-pane:visible .el-table__row:has-text('2.00') button:has-text('领取')")
    page.wait_for_selector(".el-tab-pane:visible .el-table__row:has-text('2.00') >> text=/\\d{4}-\\d{2}-\\d{2}/")
    [harvest] = client.get(f"/api/v1/compost-bins/{bin_id}/harvests", headers=keeper).json()["items"]
    assert harvest["compost_g"] == 3000
    assert sorted((cl["share_g"], cl["collected_at"] is not None) for cl in harvest["claims"]) == [(1000, False), (2000, True)]
    assert console.errors == []


def test_a_team_and_a_shift_from_the_console(client, world, engine, live_server, chromium, clock):
    clock.set_local(NOON)
    c = world.community.id
    console = Console(chromium, live_server, "desktop")
    page = console.page
    console.sign_in(staff_with_password(engine, Role.committee, c, "居委会"))
    console.go("volunteers")
    page.fill("input[placeholder='队伍名称']", "盯桶侠志愿队")
    page.click("#pane-teams .toolbar button:has-text('添加')")
    page.wait_for_selector("#pane-teams td:has-text('盯桶侠志愿队')")
    teams = client.get(f"/api/v1/communities/{c}/volunteer-teams", headers=world.h("committee")).json()["items"]
    assert [t["name"] for t in teams] == ["盯桶侠志愿队"]

    page.click(".el-tabs__item:has-text('值班')")
    page.click("#pane-shifts button:has-text('签到')")
    page.wait_for_selector("#pane-shifts button:has-text('签退')")
    clock.advance(minutes=90)
    page.click("#pane-shifts button:has-text('签退')")
    page.wait_for_selector("#pane-shifts td:has-text('90')")
    [shift] = client.get(f"/api/v1/communities/{c}/shifts", headers=world.h("committee")).json()["items"]
    assert shift["minutes"] == 90
    assert console.errors == []
