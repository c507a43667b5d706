"""When a job is due, from its schedule and its runs of the slot, at an injected `now` (no clock, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.jobs.models import JobOutcome
from app.jobs.registry import JOBS
from app.jobs.schedule import Daily, Every
from app.jobs.service import MAX_ATTEMPTS, RETRY_AFTER, Verdict, slot_verdict

SH = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")


def at(tz, *args) -> datetime:
    return datetime(*args, tzinfo=tz)


@pytest.mark.parametrize(
    ("now", "slot", "next_slot"),
    [
        (at(SH, 2026, 3, 1, 10, 0), at(SH, 2026, 3, 1, 10, 0), at(SH, 2026, 3, 1, 10, 15)),  # on a slot: that slot
        (at(SH, 2026, 3, 1, 10, 14, 59), at(SH, 2026, 3, 1, 10, 0), at(SH, 2026, 3, 1, 10, 15)),
        (at(SH, 2026, 3, 1, 23, 59), at(SH, 2026, 3, 1, 23, 45), at(SH, 2026, 3, 2, 0, 0)),
        (at(SH, 2026, 3, 2, 0, 0, 1), at(SH, 2026, 3, 2, 0, 0), at(SH, 2026, 3, 2, 0, 15)),
    ],
)
def test_every_15_minutes_in_local_time(now, slot, next_slot):
    every = Every(15)
    assert every.slot(now, SH) == slot
    assert every.next_slot(now, SH) == next_slot
    assert every.slot(now.astimezone(UTC), SH) == slot  # whatever zone `now` comes in


@pytest.mark.parametrize(
    ("now", "slot", "next_slot"),
    [
        (at(SH, 2026, 3, 1, 2, 29), at(SH, 2026, 2, 28, 2, 30), at(SH, 2026, 3, 1, 2, 30)),  # before: yesterday's
        (at(SH, 2026, 3, 1, 2, 30), at(SH, 2026, 3, 1, 2, 30), at(SH, 2026, 3, 2, 2, 30)),
        (at(SH, 2026, 3, 1, 23, 0), at(SH, 2026, 3, 1, 2, 30), at(SH, 2026, 3, 2, 2, 30)),
        # 02:30 Shanghai is 18:30 UTC the day before: the local day decides, not the UTC one.
        (datetime(2026, 2, 28, 18, 45, tzinfo=UTC), at(SH, 2026, 3, 1, 2, 30), at(SH, 2026, 3, 2, 2, 30)),
    ],
)
def test_daily_at_a_local_time(now, slot, next_slot):
    daily = Daily(time(2, 30))
    assert daily.slot(now, SH) == slot
    assert daily.next_slot(now, SH) == next_slot


def test_hourly_slots_keep_to_real_hours_across_a_dst_change():
    hourly = Every(60)
    # Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST; the day has 23 hours, slots stay an hour apart.
    before = at(BERLIN, 2026, 3, 29, 1, 30)
    assert hourly.slot(before, BERLIN) == at(BERLIN, 2026, 3, 29, 1, 0)
    assert hourly.next_slot(before, BERLIN) - hourly.slot(before, BERLIN) == timedelta(hours=1)
    assert hourly.next_slot(before, BERLIN) == at(BERLIN, 2026, 3, 29, 3, 0)


def test_a_schedule_divides_the_day():
    with pytest.raises(ValueError):
        Every(7)


def test_every_declared_job_has_a_name_schedule_and_body():
    names = [j.name for j in JOBS]
    assert names == ["ledger-expiry", "rewards-lapse", "vouchers-expire", "reminders", "reports-rollup", "idempotency-purge",
                     "backup"]
    assert all(callable(j.run) and j.about for j in JOBS)
    now = at(SH, 2026, 3, 1, 12, 7)
    for job in JOBS:
        assert job.schedule.slot(now, SH) <= now < job.schedule.next_slot(now, SH)


NOW = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)
S, F, R, A = JobOutcome.succeeded, JobOutcome.failed, JobOutcome.running, JobOutcome.abandoned


@pytest.mark.parametrize(
    ("runs", "verdict"),
    [
        ([], None),  # never run in this slot: due
        ([(S, NOW - timedelta(minutes=1))], Verdict.done),
        ([(F, NOW - timedelta(minutes=1))], Verdict.retry_later),
        ([(F, NOW - RETRY_AFTER)], None),  # a failure, long enough ago: tried again
        ([(F, NOW - timedelta(hours=1)), (S, NOW - timedelta(minutes=30))], Verdict.done),
        ([(F, NOW - timedelta(hours=2))] * MAX_ATTEMPTS, Verdict.done),  # given up until the next slot
        ([(A, NOW - timedelta(seconds=1))], None),  # a dead runner's run: again at once
        ([(R, None)], Verdict.busy),
    ],
)
def test_slot_verdict(runs, verdict):
    assert slot_verdict(runs, NOW) == verdict
