"""The application's clock (app.core.clock): set and moved by tests only, followed by the services, the
replay clock and the processes a test starts."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from app.core import clock as app_clock
from app.core.db import simulated_clock, utcnow

AT = datetime(2026, 12, 4, 15, 59, 30, tzinfo=UTC)


def test_set_flows_and_frozen_stays(clock):
    clock.set(AT)
    assert timedelta(0) <= utcnow() - AT < timedelta(seconds=5)
    clock.set(AT, frozen=True)
    assert utcnow() == AT == app_clock.now()
    assert clock.advance(minutes=1) == AT + timedelta(minutes=1) == utcnow()
    assert clock.local().isoformat() == "2026-12-05T00:00:30+08:00" and clock.today().isoformat() == "2026-12-05"


def test_the_replay_clock_goes_over_it(clock):
    clock.set(AT, frozen=True)
    with simulated_clock(AT - timedelta(days=30)):
        assert utcnow() == AT - timedelta(days=30)
    assert utcnow() == AT


def test_only_tests_move_it(monkeypatch):
    from app.core.config import get_settings

    monkeypatch.setattr(get_settings(), "environment", "production")
    with pytest.raises(RuntimeError):
        app_clock.set(AT)
    with pytest.raises(RuntimeError):
        app_clock.advance(timedelta(seconds=1))


def test_a_process_started_by_a_test_keeps_its_clock(clock):
    clock.set(AT, frozen=True)
    code = "from app.core import clock; print(clock.now().isoformat())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert abs(datetime.fromisoformat(out.strip()) - AT) < timedelta(seconds=30)
    production = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                env={**os.environ, "ENVIRONMENT": "production"}).stdout
    assert abs(datetime.fromisoformat(production.strip()) - app_clock.wall()) < timedelta(seconds=30)
