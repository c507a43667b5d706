"""When a job is due: its slots, the moments it should run, in the service's local time (TIMEZONE).

A job is due when the latest slot at or before now has not run yet; a slot missed while no instance
was up runs at the next tick, and only the latest one (every job catches up on its own).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Every:
    """Every `minutes` from local midnight (15: at :00, :15, :30 and :45), `minutes` dividing a day."""

    minutes: int

    def __post_init__(self) -> None:
        if self.minutes <= 0 or 24 * 60 % self.minutes:
            raise ValueError("Every(minutes): a whole number of slots per day")

    def slot(self, now: datetime, tz: ZoneInfo) -> datetime:
        """The latest slot at or before `now` (aware, UTC)."""
        start = _day_start(now, tz, 0)
        # Counted in elapsed time since local midnight: a day of 23 or 25 hours (DST) still has a
        # slot every `minutes` of real time.
        step = timedelta(minutes=self.minutes)
        return start + (now - start) // step * step

    def next_slot(self, now: datetime, tz: ZoneInfo) -> datetime:
        """The first slot after `now`: the day's next, or the next local midnight."""
        return min(self.slot(now, tz) + timedelta(minutes=self.minutes), _day_start(now, tz, 1))

    def describe(self, tz: ZoneInfo) -> str:
        if self.minutes % 60:
            return f"every {self.minutes} min"
        return "hourly" if self.minutes == 60 else f"every {self.minutes // 60} h"


@dataclass(frozen=True)
class Daily:
    """Once a day at a local time."""

    at: time

    def _on(self, day: date, tz: ZoneInfo) -> datetime:
        return datetime.combine(day, self.at, tzinfo=tz).astimezone(UTC)

    def slot(self, now: datetime, tz: ZoneInfo) -> datetime:
        today = now.astimezone(tz).date()
        at = self._on(today, tz)
        return at if at <= now else self._on(today - timedelta(days=1), tz)

    def next_slot(self, now: datetime, tz: ZoneInfo) -> datetime:
        today = now.astimezone(tz).date()
        at = self._on(today, tz)
        return at if at > now else self._on(today + timedelta(days=1), tz)

    def describe(self, tz: ZoneInfo) -> str:
        return f"daily at {self.at:%H:%M} {tz.key}"


def _day_start(now: datetime, tz: ZoneInfo, days: int) -> datetime:
    """Local midnight `days` after the local day of `now`, in UTC."""
    day = now.astimezone(tz).date() + timedelta(days=days)
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


Schedule = Every | Daily
