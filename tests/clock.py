"""The tests' clock: the application's own (`app.core.clock`), set and moved by tests, never the wall's.

JIANFEI_TEST_START=2026-12-04T15:59:30Z starts each test process's clock (each xdist worker's) at that
instant, time then flowing: a run can be made to cross local midnight (23:59:30 in Asia/Shanghai) or a
month's end on purpose. With JIANFEI_TEST_RESTART=1 every test starts there, so each test that outlasts
the 30 seconds runs across midnight. The `clock` fixture sets and moves the time within one test; after
every test the session's clock is back. Processes a test starts (servers, CLI jobs) follow through the
environment (`app.core.clock.OFFSET_ENV`).

A test that needs "today" to stay today (a day's cap, a recycling day, "yesterday" on a chart) sets the
clock to a time of day far from midnight, or freezes it; expected times are read from `clock.now()`.
"""

from __future__ import annotations

import os
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.core import clock as app_clock

NOON = time(12)  # a time of day far from both ends of the local day
START_ENV = "JIANFEI_TEST_START"
RESTART_ENV = "JIANFEI_TEST_RESTART"
SHANGHAI = ZoneInfo("Asia/Shanghai")

_session_offset = timedelta(0)  # the session's clock: JIANFEI_TEST_START's distance from the wall clock
_start: datetime | None = None


def _export() -> None:
    offset = app_clock.offset()
    if offset:
        os.environ[app_clock.OFFSET_ENV] = repr(offset.total_seconds())
    else:
        os.environ.pop(app_clock.OFFSET_ENV, None)


def _restore_session() -> None:
    if _session_offset:
        app_clock.set(app_clock.wall() + _session_offset)
    else:
        app_clock.reset()
    _export()


def start_from_environment() -> None:
    """Start this process's clock at JIANFEI_TEST_START when it is set (else the wall clock)."""
    global _session_offset, _start
    start = os.environ.get(START_ENV, "").strip()
    if start:
        _start = datetime.fromisoformat(start.replace("Z", "+00:00"))
        if _start.tzinfo is None:
            raise pytest.UsageError(f"{START_ENV} needs a time zone, e.g. 2026-12-04T15:59:30Z")
        _session_offset = _start - app_clock.wall()
    _restore_session()


def pytest_configure(config) -> None:
    start_from_environment()


def pytest_report_header(config) -> str | None:
    if _start is None:
        return None
    each = os.environ.get(RESTART_ENV) == "1"
    return f"clock: {'each test' if each else 'the session'} starts at {_start.isoformat()}, time flowing from there"


@pytest.fixture(autouse=True)
def _session_clock():
    """Every test starts on the session's clock (or at JIANFEI_TEST_START with JIANFEI_TEST_RESTART=1)
    and leaves it so, whatever it did to the time."""
    global _session_offset
    if _start is not None and os.environ.get(RESTART_ENV) == "1":
        _session_offset = _start - app_clock.wall()
        _restore_session()
    yield
    _restore_session()


class Clock:
    """The application's clock as one test sees it."""

    def now(self) -> datetime:
        return app_clock.now()

    def local(self, tz: ZoneInfo = SHANGHAI) -> datetime:
        return app_clock.now().astimezone(tz)

    def today(self, tz: ZoneInfo = SHANGHAI) -> date:
        return self.local(tz).date()

    def set(self, at: datetime, *, frozen: bool = False) -> datetime:
        """From now on the time is `at` (aware), flowing unless `frozen`; returns `at`."""
        app_clock.set(at, frozen=frozen)
        _export()
        return at

    def set_local(self, at: time, *, day: date | None = None, tz: ZoneInfo = SHANGHAI, frozen: bool = False) -> datetime:
        """The clock at a local time of day (today's, by the clock, unless `day`)."""
        return self.set(datetime.combine(day or self.today(tz), at, tz), frozen=frozen)

    def advance(self, delta: timedelta | None = None, **parts: float) -> datetime:
        """Move the clock on by `delta` (or timedelta(**parts)); returns the new time."""
        app_clock.advance(delta if delta is not None else timedelta(**parts))
        _export()
        return app_clock.now()


@pytest.fixture
def clock() -> Clock:
    """Set and move the application's time in this test: `clock.set(...)`, `clock.advance(minutes=5)`."""
    return Clock()
