"""Database engine and sessions: PostgreSQL through psycopg 3, sync SQLAlchemy sessions and asyncio
connections for the hot paths; a database that is busy or unreachable is a 503 with Retry-After."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated

import psycopg
import sqlalchemy.exc
from fastapi import Depends
from psycopg_pool import PoolClosed, PoolTimeout, TooManyRequests
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine

from app.core import clock
from app.core.config import get_settings
from app.kit.errors import Unavailable

_engine: Engine | None = None
log = logging.getLogger(__name__)


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
    """A sync engine with the configured pool (DB_POOL_*): a connection is checked before each use
    (pre-ping), so after a database restart the next request reconnects instead of failing."""
    s = get_settings()
    return create_engine(
        url, pool_size=s.db_pool_size, max_overflow=s.db_pool_overflow, pool_timeout=s.db_pool_wait_seconds,
        pool_pre_ping=True, connect_args={"connect_timeout": s.db_connect_timeout_seconds},
    )


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


# --- a database that is busy or unreachable: 503 with Retry-After, never a 500 ---------------

def busy() -> Unavailable:
    """Every connection of a pool is in use (past DB_POOL_WAIT_SECONDS): come back in a second."""
    return Unavailable("busy", "服务繁忙，请稍后再试", "The service is busy: try again shortly", retry_after=1)


def database_down() -> Unavailable:
    """PostgreSQL does not answer (stopped, restarting, unreachable)."""
    return Unavailable(
        "database_unavailable", "数据库暂时无法访问，请稍后再试", "The database is unavailable: try again shortly",
        retry_after=2,
    )


# SQLSTATEs of a server going away or turning connections down: connection exceptions (08), admin and
# crash shutdown, "cannot connect now" (starting up or shutting down), too many connections.
_DOWN_STATES = frozenset({"57P01", "57P02", "57P03", "53300"})


def connection_failed(exc: BaseException) -> bool:
    """Whether a psycopg error says the connection failed, not the statement: the server stopped,
    restarted, refused the connection or closed it. (Errors with no SQLSTATE come from the client
    library: a refused or broken connection.) The pool's own errors are not: see `unavailable`."""
    if not isinstance(exc, psycopg.OperationalError) or isinstance(exc, (PoolTimeout, TooManyRequests, PoolClosed)):
        return False
    state = exc.sqlstate
    return state is None or state.startswith("08") or state in _DOWN_STATES


def unavailable(exc: BaseException) -> Unavailable | None:
    """The 503 a database failure is answered with — a pool with no connection free in time, or a
    database that does not answer — or None for any other error (a bug: a 500)."""
    if isinstance(exc, (sqlalchemy.exc.TimeoutError, PoolTimeout, TooManyRequests)):
        return busy()
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        return database_down() if exc.connection_invalidated or connection_failed(exc.orig) else None
    if isinstance(exc, PoolClosed) or connection_failed(exc):
        return database_down()
    return None


# --- asyncio connections for the hot paths ----------------------------------------------------
#
# A route that is `async def` and talks to PostgreSQL through these never leaves the event loop: no
# thread-pool hand-off per request (measured at a third of the check-in path's CPU when it went
# through a sync session). One pool per event loop and database; closed when the app shuts down.

PROBE_SECONDS = 0.5  # while the database is down, how often a process tries to reach it


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
        conninfo, min_size=1, max_size=settings.async_pool_size, open=False, timeout=settings.db_pool_wait_seconds,
        kwargs={
            "autocommit": True, "connect_timeout": settings.db_connect_timeout_seconds,
            "options": "-c plan_cache_mode=force_generic_plan -c lock_timeout=500",
        },
    )
    await pool.open()
    return pool


class _HotPool:
    """The asyncio connections of one event loop to one database, and whether that database answers.

    A connection that fails as a connection (the server stopped, restarted, closed it) marks the
    database down: until a probe connects again, every caller is answered 503 at once instead of
    waiting out the pool's timeout. The probe tries every PROBE_SECONDS and, once it connects, puts a
    fresh pool in place of the old one, whose idle connections died with the server. (Left to itself,
    psycopg_pool retries a failed connection after 1, 2, 4, 8... seconds: after a 40 s outage its
    next try came some 25 s after PostgreSQL was back, and the scans waited 30 s for it and failed.)
    A pool that has no connection free in time (PoolTimeout) is a 503 too, and starts a probe as
    well: a pool that cannot connect times out the same way.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, conninfo: str):
        self.loop = loop  # held, so that its id is not reused by another loop while this lives
        self.conninfo = conninfo
        self.down = False
        self._pool: asyncio.Future | None = None  # of the AsyncConnectionPool
        self._probe: asyncio.Task | None = None
        self._probed_at = 0.0  # time.monotonic() of the last probe that connected
        self._down_since = 0.0
        self._closing: set[asyncio.Task] = set()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator:
        if self.down:
            raise database_down()
        pool = await self._current()
        try:
            async with pool.connection() as conn:
                yield conn
        except PoolClosed:  # replaced by a fresh pool while this waited
            raise database_down() from None
        except (PoolTimeout, TooManyRequests):
            self._start_probe(after_timeout=True)
            raise busy() from None
        except psycopg.OperationalError as exc:
            if not connection_failed(exc):
                raise
            if not self.down:
                log.warning("database connection lost, answering 503 until it is back: %s", exc)
                self.down = True
                self._down_since = time.monotonic()
            self._start_probe()
            raise database_down() from exc

    async def _current(self):
        if self._pool is None:
            self._pool = asyncio.ensure_future(_open_pool(self.conninfo))
        future = self._pool
        try:
            return await future
        except BaseException:
            if self._pool is future:
                self._pool = None
            raise

    def _start_probe(self, after_timeout: bool = False) -> None:
        if self._probe is not None and not self._probe.done():
            return
        if after_timeout and time.monotonic() - self._probed_at < PROBE_SECONDS:
            return  # the database answered a moment ago: the pool is busy, not cut off
        self._probe = asyncio.ensure_future(self._probe_until_up())

    async def _probe_until_up(self) -> None:
        timeout = get_settings().db_connect_timeout_seconds
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self.conninfo, connect_timeout=timeout)
            except (psycopg.OperationalError, OSError) as exc:
                if not self.down:
                    log.warning("database unreachable, answering 503 until it is back: %s", exc)
                    self.down = True
                    self._down_since = time.monotonic()
                await asyncio.sleep(PROBE_SECONDS)
                continue
            await conn.close()
            self._probed_at = time.monotonic()
            if self.down:
                self._retire_pool()
                self.down = False
                log.warning("database reachable again after %.1f s", self._probed_at - self._down_since)
            return

    def _retire_pool(self) -> None:
        """Drop the pool (the next caller opens a fresh one); close it in the background: connections
        still in use are closed as they come back."""
        future, self._pool = self._pool, None
        if future is None:
            return

        async def close() -> None:
            try:
                pool = await future
            except Exception:  # noqa: BLE001 - it never opened: nothing to close
                return
            await pool.close()

        task = asyncio.ensure_future(close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
        self._retire_pool()
        await asyncio.gather(*self._closing, return_exceptions=True)


_hot_pools: dict[tuple[int, str], _HotPool] = {}


def _hot_pool(conninfo: str) -> _HotPool:
    loop = asyncio.get_running_loop()
    key = (id(loop), conninfo)
    hot = _hot_pools.get(key)
    if hot is None or hot.loop is not loop:
        hot = _hot_pools[key] = _HotPool(loop, conninfo)
    return hot


@asynccontextmanager
async def async_connection() -> AsyncIterator:
    """A pooled psycopg AsyncConnection in autocommit: each statement is its own transaction (one
    round trip); wrap several in `async with conn.transaction():` when they must stand together.

    Unavailable (503) when no connection is free within DB_POOL_WAIT_SECONDS, or the database does
    not answer; a connection that fails as one inside the block is answered so too."""
    async with _hot_pool(_conninfo(get_engine())).connection() as conn:
        yield conn


async def close_async_pools() -> None:
    """Close the pools of the running loop (app shutdown)."""
    loop = id(asyncio.get_running_loop())
    for key in [k for k in _hot_pools if k[0] == loop]:
        await _hot_pools.pop(key).close()
