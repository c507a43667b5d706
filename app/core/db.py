"""Database engine and sessions: PostgreSQL through psycopg 3, sync SQLAlchemy sessions and asyncio
connections for the hot paths."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated

from fastapi import Depends
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine

from app.core import clock
from app.core.config import get_settings

_engine: Engine | None = None


_simulated_now: ContextVar[datetime | None] = ContextVar("simulated_now", default=None)


def utcnow() -> datetime:
    """The instant the services act at, aware UTC (columns are timestamptz): the replay clock inside
    `simulated_clock`, else the application's clock (`app.core.clock`, which tests move)."""
    return _simulated_now.get() or clock.now()


@contextmanager
def simulated_clock(at: datetime) -> Iterator[None]:
    """Inside the block, `utcnow()` answers `at` (aware). For replaying history through the services,
    e.g. the demo generator's year of check-ins; never set while serving requests."""
    if at.tzinfo is None:
        raise ValueError("simulated_clock needs an aware datetime")
    token = _simulated_now.set(at.astimezone(UTC))
    try:
        yield
    finally:
        _simulated_now.reset(token)


def make_engine(url: str) -> Engine:
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def get_engine() -> Engine:
    global _engine
    if _engine is None:
        _engine = make_engine(get_settings().resolved_database_url())
    return _engine


_reports_engine: tuple[str, Engine] | None = None


def get_reports_engine() -> Engine:
    """The engine the point-totals exports read with: a replica at REPORTS_DATABASE_URL, else the
    primary's. Their reads need nothing of the primary: one REPEATABLE READ snapshot of the roll-up and
    the journal, which a hot standby serves."""
    global _reports_engine
    url = get_settings().resolved_reports_database_url()
    if url is None:
        return get_engine()
    if _reports_engine is None or _reports_engine[0] != url:
        if _reports_engine is not None:
            _reports_engine[1].dispose()
        _reports_engine = (url, make_engine(url))
    return _reports_engine[1]


def set_engine(engine: Engine | None) -> None:
    global _engine
    _engine = engine


def get_session() -> Iterator[Session]:
    with Session(get_engine(), expire_on_commit=False) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


# --- asyncio connections for the hot paths ----------------------------------------------------
#
# A route that is `async def` and talks to PostgreSQL through these never leaves the event loop: no
# thread-pool hand-off per request (measured at a third of the check-in path's CPU when it went
# through a sync session). One pool per event loop and database; closed when the app shuts down.

_async_pools: dict[tuple[int, str], asyncio.Future] = {}


@lru_cache(maxsize=16)
def engine_key(engine: Engine) -> str:
    """The engine's URL as text (password hidden): the key of the per-database caches. Cached, since
    rendering a URL is not free on a path that asks for it on every request."""
    return str(engine.url)


@lru_cache(maxsize=16)
def _conninfo(engine: Engine) -> str:
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _open_pool(conninfo: str):
    from psycopg_pool import AsyncConnectionPool

    settings = get_settings()
    # Generic plans: the hot-path statements have a fixed shape and are prepared by psycopg after a
    # few runs, but PostgreSQL kept re-planning the check-in's CTE chain for each set of parameters
    # (a custom plan). Forcing the generic plan cut PostgreSQL's CPU per check-in by about a third
    # (0.64 → 0.45 ms, bench/RESULTS.md); every lookup in it is by a unique or leading index key.
    # lock_timeout: a process writes its bin-side scans one statement at a time (app.checkins.writer),
    # so a statement waiting on a row another write holds (an upload, a reversal) would hold up every
    # scan of the process; past half a second it gives up and those scans take the general path.
    pool = AsyncConnectionPool(
        conninfo, min_size=1, max_size=settings.async_pool_size, open=False,
        kwargs={"autocommit": True, "options": "-c plan_cache_mode=force_generic_plan -c lock_timeout=500"},
    )
    await pool.open()
    return pool


@asynccontextmanager
async def async_connection() -> AsyncIterator:
    """A pooled psycopg AsyncConnection in autocommit: each statement is its own transaction (one
    round trip); wrap several in `async with conn.transaction():` when they must stand together."""
    conninfo = _conninfo(get_engine())
    key = (id(asyncio.get_running_loop()), conninfo)
    future = _async_pools.get(key)
    if future is None:
        future = _async_pools[key] = asyncio.ensure_future(_open_pool(conninfo))
    try:
        pool = await future
    except BaseException:
        _async_pools.pop(key, None)
        raise
    async with pool.connection() as conn:
        yield conn


async def close_async_pools() -> None:
    """Close the pools of the running loop (app shutdown)."""
    loop = id(asyncio.get_running_loop())
    for key in [k for k in _async_pools if k[0] == loop]:
        future = _async_pools.pop(key)
        if future.done() and not future.exception():
            await future.result().close()
