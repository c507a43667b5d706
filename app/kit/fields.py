"""Field types for calendar input: dates within a sane range, wall-clock times without an offset.

Dates far outside the range overflow once shifted by a time zone (year 1 or 9999), and an offset on
a wall-clock time makes it incomparable with the naive local times it is checked against.
"""

from __future__ import annotations

from datetime import date, time
from typing import Annotated

from pydantic import AfterValidator, Field

MIN_DATE = date(2000, 1, 1)
MAX_DATE = date(2100, 12, 31)


def _naive(value: time) -> time:
    if value.tzinfo is not None:
        raise ValueError("a local wall-clock time, without a time zone offset")
    return value


Day = Annotated[date, Field(ge=MIN_DATE, le=MAX_DATE)]
LocalTime = Annotated[time, AfterValidator(_naive)]
