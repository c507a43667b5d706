"""The application's one clock: whatever in app/ asks what time it is asks `now()`.

Services ask `app.core.db.utcnow()`, which answers the demo generator's replay clock (`simulated_clock`)
inside one of its blocks and `now()` everywhere else. Tests move this clock (`set`, `advance`, `reset`),
which is allowed only when ENVIRONMENT=test; a process started by a test follows the test's clock through
JIANFEI_TEST_CLOCK_OFFSET (seconds added to the wall clock, read at import, ignored outside tests).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial

OFFSET_ENV = "JIANFEI_TEST_CLOCK_OFFSET"

_wall: Callable[[], datetime] = partial(datetime.now, UTC)
_source: Callable[[], datetime] = _wall  # swapped, never wrapped: `now()` stays one call on the hot path
_frozen = False


def now() -> datetime:
    """The current instant, aware UTC: the wall clock unless a test has moved it."""
    return _source()


def wall() -> datetime:
    """The machine's clock, whatever a test did to `now()`: for a test to measure how far it moved it."""
    return _wall()


def _allowed() -> None:
    from app.core.config import get_settings

    if get_settings().environment != "test":
        raise RuntimeError("the clock is moved by tests only (ENVIRONMENT=test)")


def set(at: datetime, *, frozen: bool = False) -> None:
    """From here on `now()` answers `at`, then flows with the wall clock (or stays at `at` if `frozen`)."""
    if at.tzinfo is None:
        raise ValueError("the clock needs an aware datetime")
    _allowed()
    _install(at.astimezone(UTC), frozen)


def advance(delta: timedelta) -> None:
    """Move the clock by `delta`; a frozen clock stays frozen, at its new instant."""
    _allowed()
    _install(now() + delta, _frozen)


def offset() -> timedelta:
    """How far `now()` is from the wall clock (zero when no test moved it)."""
    return timedelta(0) if _source is _wall else now() - _wall()


def reset() -> None:
    """Back to the wall clock."""
    global _source, _frozen
    _source, _frozen = _wall, False


def _install(at: datetime, frozen: bool) -> None:
    global _source, _frozen
    shift = at - _wall()

    def stopped() -> datetime:
        return at

    def shifted() -> datetime:
        return _wall() + shift

    _source, _frozen = (stopped if frozen else shifted), frozen


def _from_environment() -> None:
    """A process started by a test (a server, a CLI job) keeps the test's clock."""
    seconds = os.environ.get(OFFSET_ENV)
    if not seconds:
        return
    from app.core.config import get_settings

    if get_settings().environment == "test":
        set(_wall() + timedelta(seconds=float(seconds)))


_from_environment()
