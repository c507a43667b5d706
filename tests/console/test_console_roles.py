"""The console by role and scope, in Chromium: each role's menu holds the pages it may use and each of
them (every tab) opens without a refusal; an account with grants in two communities and a street
switches between them; English on request."""

from __future__ import annotations

import pytest

from app.identity.models import Role
from tests.browser import staff_with_password
from tests.console.test_console_browser import Console

# What each role finds in its menu (app/*/auth.py decides; the console only hides the rest).
MENUS = {
    Role.committee: ["households", "roster", "labels", "rules", "rewards", "desk", "cheques", "recycling", "compost", "volunteers", "reports", "oversight"],
    Role.clerk: ["households", "desk", "cheques", "recycling", "compost", "volunteers"],
    Role.compost_keeper: ["households", "recycling", "compost", "volunteers"],
    Role.volunteer: ["households", "cheques", "recycling", "compost", "volunteers"],
    Role.street_viewer: ["households", "recycling", "compost", "reports"],
}


@pytest.mark.parametrize("role", list(MENUS), ids=lambda r: r.value)
def test_each_role_sees_its_pages_and_each_opens(world, engine, live_server, chromium, role):
    grant = ({"role": role, "street_id": world.street.id},) if role == Role.street_viewer else ()
    console = Console(chromium, live_server, "desktop")
    page = console.page
    console.sign_in(staff_with_password(engine, role, None if grant else world.community.id, role.value, *grant))
    assert page.eval_on_selector_all("[data-nav]", "els => els.map(e => e.dataset.nav)") == MENUS[role]
    for name in MENUS[role]:
        console.go(name)
        page.wait_for_load_state("networkidle")
        for tab in page.locator(".el-tabs__item").all():
            tab.click()
            page.wait_for_load_state("networkidle")
        refused = page.eval_on_selector_all(".el-message--error", "els => els.map(e => e.innerText)")
        assert refused == [], f"{role.value} on {name}: {refused}"
    assert console.errors == []


def test_switching_community_and_street_and_language(world, other_world, engine, live_server, chromium):
    console = Console(chromium, live_server, "desktop")
    page = console.page
    console.sign_in(staff_with_password(engine, Role.committee, world.community.id, "两社区",
                                        {"role": Role.committee, "community_id": other_world.community.id},
                                        {"role": Role.street_viewer, "street_id": world.street.id}))
    first = page.inner_text(".el-table__body")
    # The other community: its households, and the page stays the same kind of page.
    console.pick(".scope-select", other_world.community.name)
    page.wait_for_selector(f".scope-select:has-text('{other_world.community.name}')")
    page.wait_for_function("first => document.querySelector('.el-table__body').innerText !== first", arg=first)
    codes = page.inner_text(".el-table__body")
    assert other_world.households[0].public_code in codes and world.households[0].public_code not in codes
    # The street: only the reports, with the street's monthly report.
    console.pick(".scope-select", world.street.name)
    page.wait_for_url("**/console/reports")
    page.wait_for_selector("#monthly")
    assert page.eval_on_selector_all("[data-nav]", "els => els.map(e => e.dataset.nav)") == ["reports"]
    with page.expect_download() as download:
        page.click("#export-xlsx")
    assert download.value.suggested_filename.endswith(".xlsx")
    # English on request: the console's words and the API's errors.
    console.pick(".lang-select", "English")
    page.wait_for_selector("[data-nav='reports']:has-text('Reports')")
    page.reload()
    page.wait_for_selector("[data-nav='reports']:has-text('Reports')")
    assert console.errors == []
