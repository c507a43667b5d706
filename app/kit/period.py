"""A period in the API: `start` and `end`, local calendar dates (YYYY-MM-DD) in the community's time
zone, both included; either may be left out (open). Never `from`/`to`, never date-times: an operation
whose period has a default says so in the parameter's description."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import Query

from app.kit.errors import BadRequest
from app.kit.fields import Day

Start = Annotated[Day | None, Query(description="起始日期（社区当地日期，含）")]
End = Annotated[Day | None, Query(description="截止日期（社区当地日期，含）")]


def local_bounds(tz: ZoneInfo, start: date | None, end: date | None) -> tuple[datetime | None, datetime | None]:
    """Local calendar days [start, end] as the instants [lo, hi) they cover."""
    if start and end and end < start:
        raise BadRequest("invalid_period", "结束日期早于开始日期", "End date is before start date", "end")
    lo = datetime.combine(start, time.min, tz) if start else None
    hi = datetime.combine(end + timedelta(days=1), time.min, tz) if end else None
    return lo, hi
