"""The committee's console in a real browser: Playwright drives Debian's Chromium against a live server
on PostgreSQL, at a phone's and a desktop's size. Every step goes through the console's pages (the
public API behind them) and is checked again through the API; any step that fails fails the test.
Screenshots of each page land in test-artifacts/console/.
"""

from __future__ import annotations

import csv
import io

import pytest

from app.identity.models import Role
from tests.browser import ARTIFACTS, PASSWORD, staff_with_password
from tests.clock import NOON
from tests.ledger.helpers import earn
from tests.rewards.helpers import add_item, consent_code, reserve

VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 900}}
SHOTS = ARTIFACTS / "console"


def _csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["楼栋", "单元", "门牌", "人数"])
    writer.writerows(rows)
    return ("\ufeff" + out.getvalue()).encode()


class Console:
    """One staff member's browser tab on the console."""

    def __init__(self, browser, base: str, viewport: str):
        self.page = browser.new_page(viewport=VIEWPORTS[viewport], accept_downloads=True)
        self.page.set_default_timeout(15000)
        self.base, self.viewport = base, viewport
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: m.type == "error" and "Content Security Policy" in m.text and self.errors.append(m.text))

    def sign_in(self, username: str) -> None:
        self.page.goto(f"{self.base}/console/")
        self.page.fill("#username", username)
        self.page.fill("#password", PASSWORD)
        self.page.click("#sign-in")
        self.page.wait_for_url("**/console/households")  # every staff role's first page
        self.page.wait_for_selector(".el-table__row")

    def go(self, name: str) -> None:
        """Through the menu, as a person would: the drawer first on a phone."""
        if self.page.is_visible("#menu-toggle"):
            self.page.click("#menu-toggle")
        self.page.click(f"[data-nav='{name}']:visible")
        self.page.wait_for_url(f"**/console/{name}")

    def pick(self, select: str, option: str) -> None:
        self.page.click(select)
        self.page.click(f".el-select-dropdown__item:visible:has-text('{option}')")

    def number(self, selector: str, value: int) -> None:
        self.page.fill(selector, str(value))
        self.page.press(selector, "Enter")

    def says(self, text: str) -> None:
        self.page.wait_for_selector(f".el-message:has-text('{text}')")

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}-{self.viewport}.png"), full_page=True)


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_a_committees_first_day(client, world, engine, live_server, chromium, clock, viewport):
    clock.set_local(NOON)
    c = world.community.id
    committee = world.h("committee")
    households_before = len(client.get(f"/api/v1/communities/{c}/households", params={"limit": 200}, headers=committee).json()["items"])
    console = Console(chromium, live_server, viewport)
    page = console.page

    # Sign in: the committee's community is chosen, the menu shows what a committee may do.
    console.sign_in(staff_with_password(engine, Role.committee, c, "居委会"))
    console.shot("households")
    page.wait_for_selector(f".scope-select:has-text('{world.community.name}')")
    console.shot("households")

    # A roster with bad rows: the dry run reports them by row and column, in Chinese; nothing is imported.
    console.go("roster")
    page.set_input_files(".el-upload__input", files=[{"name": "花名册.csv", "mimeType": "text/csv", "buffer": _csv(
        [["1号楼", "1", "501", "3"], ["1号楼", "1", "", "2"], ["9号楼", "1", "101", "2"]])}])
    page.click("#dry-run")
    page.wait_for_selector("#roster-errors")
    assert "共 3 行：有效 1 行，问题 2 个" in page.inner_text("#roster-summary")
    problems = page.inner_text("#roster-errors")
    assert "缺少门牌号" in problems and "9号楼" in problems and "门牌" in problems
    console.shot("roster")
    with page.expect_download() as download:
        page.click("#errors-file")
    errors_csv = open(download.value.path(), encoding="utf-8-sig").read()
    assert "缺少门牌号" in errors_csv
    assert page.is_disabled("#import-all")

    # Fixed, checked again, imported whole.
    page.set_input_files(".el-upload__input", files=[{"name": "花名册-改.csv", "mimeType": "text/csv", "buffer": _csv(
        [["1号楼", "1", "501", "3"], ["1号楼", "1", "601", "2"], ["2号楼", "1", "501", "2"]])}])
    page.click("#dry-run")
    page.wait_for_selector("#roster-summary:has-text('问题 0 个')")
    page.click("#import-all")
    page.wait_for_selector("#roster-summary:has-text('新增 3 户')")
    after = client.get(f"/api/v1/communities/{c}/households", params={"limit": 200}, headers=committee).json()["items"]
    assert len(after) == households_before + 3
    assert {"501", "601"} <= {h["door_plate"] for h in after if h["building_name"] == "1号楼"}

    # A household's page: its passbook, and the printable statement fetched with the token and shown.
    first = world.households[0]
    earn(engine, first, 12)
    console.go("households")
    page.fill("#household-search", "101")
    page.press("#household-search", "Enter")
    page.click(f".el-table__row:has-text('{first.public_code}')")
    page.wait_for_selector("#balance:has-text('12')")
    page.wait_for_selector(".el-table__row:has-text('桶边督导')")
    console.shot("household")
    page.click("#printable")
    statement = page.frame_locator("#statement-frame")
    assert "积分明细" in statement.locator("h1").inner_text()
    assert "12" in statement.locator("body").inner_text()
    page.keyboard.press("Escape")

    # Door-plate labels for a building: the PDF the API makes, fetched with the token and shown.
    console.go("labels")
    console.pick("#label-building", "1号楼")
    with page.expect_response(lambda r: "/labels" in r.url) as answer:
        page.click("#print-building")
    assert answer.value.status == 200 and answer.value.headers["content-type"] == "application/pdf"
    page.wait_for_selector("#labels-frame")
    assert page.get_attribute("#labels-frame", "src").startswith("blob:")  # the same bytes, shown (policy: blob frames)
    page.keyboard.press("Escape")

    # Points rules: a new version in force at once.
    console.go("rules")
    console.number("#rule-checkin_correct", 5)
    console.number("#rule-daily_cap", 40)
    page.click("#save-rules")
    console.says("已保存")
    current = client.get(f"/api/v1/communities/{c}/points-rules/current", headers=committee).json()
    assert current["checkin_correct"] == 5 and current["daily_cap"] == 40
    console.shot("rules")

    # Rewards: the form refuses an item without a name, then adds it with its stock.
    console.go("rewards")
    page.click("#add-reward")
    page.click("#save-reward")
    page.wait_for_selector("#reward-form .el-form-item__error:has-text('必填')")
    page.fill("#reward-name", "环保袋")
    console.number("#reward-price", 30)
    console.number("#reward-stock", 20)
    page.click("#save-reward")
    page.wait_for_selector("#rewards-table td:has-text('环保袋')")
    items = client.get(f"/api/v1/communities/{c}/rewards", headers=committee).json()["items"]
    assert [(i["name"], i["price_points"], i["stock"]) for i in items] == [("环保袋", 30, 20)]
    console.shot("rewards")

    # The dashboard, and the month's point totals as the API's XLSX.
    console.go("reports")
    page.wait_for_selector("#dashboard")
    assert page.input_value("#export-month") == clock.local().strftime("%Y-%m")  # the server's month
    with page.expect_download() as download:
        page.click("#export-xlsx")
    assert download.value.suggested_filename.endswith(".xlsx")
    assert open(download.value.path(), "rb").read(2) == b"PK"
    console.shot("reports")

    # A refused access token is refreshed without losing the page (a reload keeps the session).
    page.evaluate("""() => { const s = JSON.parse(sessionStorage.getItem('jianfei-console'));
                             s.access = 'expired'; sessionStorage.setItem('jianfei-console', JSON.stringify(s)); }""")
    page.goto(f"{live_server}/console/households")
    page.wait_for_selector(".el-table__row:has-text('601')")
    assert page.url.endswith("/console/households")
    assert page.evaluate("JSON.parse(sessionStorage.getItem('jianfei-console')).access") != "expired"

    # Sign out: back to the sign-in page, and the refresh token no longer works.
    refresh = page.evaluate("JSON.parse(sessionStorage.getItem('jianfei-console')).refresh")
    page.click(".account-button")
    page.click("#sign-out")
    page.wait_for_selector("#username")
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": refresh}).status_code == 401
    assert console.errors == []


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_an_exchange_day_at_the_desk(client, world, engine, live_server, chromium, clock, viewport):
    clock.set_local(NOON)
    c = world.community.id
    household = world.households[0]  # 1号楼 1 101, the resident's
    earn(engine, household, 200)
    bag = add_item(world, name="环保袋", price_points=30, stock=5)
    soap = add_item(world, name="洗衣皂", price_points=20, stock=5)
    held = reserve(world, bag["id"])
    assert held.status_code == 201, held.text
    assert client.put(f"/api/v1/households/{household.id}/pin", json={"pin": "258036"}, headers=world.h("resident")).status_code == 204
    console = Console(chromium, live_server, viewport)
    page = console.page
    console.sign_in(staff_with_password(engine, Role.clerk, c, "兑换员"))

    # Find the household by its door plate. A clerk's menu has no committee pages.
    console.go("desk")
    assert page.locator("[data-nav='cheques']").count() == 1
    assert page.locator("[data-nav='roster'], [data-nav='rules'], [data-nav='rewards'], [data-nav='reports']").count() == 0
    page.fill("#desk-find", "101")
    page.click(".el-autocomplete-suggestion li:has-text('1号楼 1 101')")
    page.wait_for_selector("#desk-reserved td:has-text('环保袋')")
    assert page.inner_text("#desk-balance") == "170"

    # The resident's consent code (typed as shown on their phone) hands over the reservation.
    page.fill("#consent-code", consent_code(world))
    page.click("#desk-reserved .hand-over")
    console.says("已交付")
    assert client.get(f"/api/v1/redemptions/{held.json()['id']}", headers=world.h("clerk")).json()["status"] == "fulfilled"
    page.wait_for_selector("#desk-reserved .el-table__empty-text")

    # A counter redemption with the household's PIN (the resident without a phone).
    page.click(".el-radio-button:has-text('兑换密码')")
    page.fill("#pin", "258036")
    console.number("#desk-catalogue tr:has-text('洗衣皂') input", 1)
    page.click("#counter-redeem")
    console.says("兑换成功")
    page.wait_for_selector("#desk-balance:has-text('150')")
    done = client.get(f"/api/v1/communities/{c}/redemptions", params={"status": "fulfilled"}, headers=world.h("clerk")).json()["items"]
    assert sorted(r["item_id"] for r in done) == sorted([bag["id"], soap["id"]])
    console.shot("desk")

    # A points cheque issued at the desk: its claim code is shown once, to print.
    console.go("cheques")
    console.number("#cheque-points", 15)
    page.click("#issue-cheque")
    page.wait_for_selector("#cheque-issued")
    code = page.inner_text("#cheque-code").strip()
    assert len(code) >= 6
    console.shot("cheques")
    issued = client.get(f"/api/v1/communities/{c}/vouchers", headers=world.h("clerk")).json()["items"]
    assert [(v["points"], v["status"]) for v in issued] == [(15, "outstanding")]
    claimed = client.post(f"/api/v1/households/{household.id}/voucher-claims", json={"code": code}, headers=world.h("resident"))
    assert claimed.status_code == 200 and claimed.json()["points"] == 15
    assert console.errors == []
