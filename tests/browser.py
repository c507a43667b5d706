"""What the console's browser tests share: Debian's Chromium through Playwright (no browser download).
The live server is tests/conftest.py's `live_server`; staff who sign in with a password,
tests.support.staff_with_password."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import PASSWORD, staff_with_password  # noqa: F401 - re-exported for the console tests

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.fixture
def chromium():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: scripts/test.sh installs it (apt-get install -y chromium)", pytrace=False)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()
