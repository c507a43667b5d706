"""Reminder tests run at any hour: the job's daytime window is opened to the whole day unless a test narrows it,
and the clock is at noon."""

from __future__ import annotations

import pytest

from app.core.config import get_settings
from tests.clock import NOON


@pytest.fixture(autouse=True)
def any_hour(monkeypatch):
    monkeypatch.setattr(get_settings(), "reminder_hours", "0-24")
    monkeypatch.setenv("REMINDER_HOURS", "0-24")  # for `jianfei reminders run` in a subprocess


@pytest.fixture(autouse=True)
def midday(clock):
    """And at noon, local: "tomorrow" (the eve of a recycling day) is one day from a test's start to its end."""
    clock.set_local(NOON)
