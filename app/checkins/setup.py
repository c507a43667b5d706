"""A community's field setup — time zone, drop-off windows, stations — as the scan path reads it: from
this process's cache, filled and refreshed without holding up the scans."""

from __future__ import annotations

import asyncio
import logging
import threading
import time as _time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from app.checkins.models import DropWindow, Station
from app.core.db import engine_key, get_engine
from app.places import service as places
from app.rules import service as rules

WINDOW = DropWindow.__table__
STATION = Station.__table__
SETUP_CACHE_SECONDS = 5.0
# The bin-side path reloads the setup and rules caches this long before they expire, in the
# background, while the scans go on with the cached ones: under load they never expire. (They used
# to, every 5 s, and each scan arriving then waited for its own reload in a worker thread: every 5 s
# a stall of the process's scans, 75-180 ms in the server's own log under the ingest benchmark.)
REFRESH_AHEAD = 1.0
log = logging.getLogger(__name__)


# --- the community's field setup, cached briefly (the scan path reads it on every request) -----

@dataclass(frozen=True)
class WindowSpec:
    id: int
    starts: time
    ends: time
    weekdays: frozenset[int]


@dataclass(frozen=True)
class Setup:
    tz: ZoneInfo
    windows: tuple[WindowSpec, ...]
    stations: frozenset[int]

    def window_at(self, local: datetime) -> WindowSpec | None:
        t = local.time()
        wd = local.isoweekday()
        for w in self.windows:
            if w.starts <= t < w.ends and wd in w.weekdays:
                return w
        return None


_setups: dict[tuple[str, int], tuple[float, Setup]] = {}
# How many times each entry was dropped after a change: a read that began before a change (a refresh
# in a worker thread) does not put what it read back into the cache after the change dropped it.
_forgotten: dict[tuple[str, int], int] = {}
_setup_lock = threading.Lock()


def _cache_key(session: Session, community_id: int) -> tuple[str, int]:
    return (engine_key(session.get_bind().engine), community_id)


def cached_setup(key: tuple[str, int]) -> Setup | None:
    """The setup in this process's cache under (engine URL, community id), if still fresh."""
    hit = _setups.get(key)
    return hit[1] if hit is not None and hit[0] > _time.monotonic() else None


def load_setup(session: Session, community_id: int, refresh: bool = False) -> Setup:
    """The community's stations and windows, from this process's cache while fresh (refresh: read
    them again anyway)."""
    key = _cache_key(session, community_id)
    cached = None if refresh else cached_setup(key)
    if cached is not None:
        return cached
    generation = _forgotten.get(key, 0)
    community = places.get_community(session, community_id)
    windows = tuple(
        WindowSpec(i, s, e, frozenset(int(c) for c in wd))
        for i, s, e, wd in session.execute(
            select(WINDOW.c.id, WINDOW.c.starts, WINDOW.c.ends, WINDOW.c.weekdays)
            .where(WINDOW.c.community_id == community_id, WINDOW.c.active.is_(True))
            .order_by(WINDOW.c.starts)
        ).all()
    )
    stations = frozenset(
        session.execute(
            select(STATION.c.id).where(STATION.c.community_id == community_id, STATION.c.active.is_(True))
        ).scalars()
    )
    setup = Setup(ZoneInfo(community.timezone), windows, stations)
    with _setup_lock:
        if _forgotten.get(key, 0) == generation:  # else a change committed while this read: not cached
            _setups[key] = (_time.monotonic() + SETUP_CACHE_SECONDS, setup)
    return setup


def forget(session: Session, community_id: int) -> None:
    """Drop the community's setup after a change to its windows or stations."""
    key = _cache_key(session, community_id)
    with _setup_lock:
        _setups.pop(key, None)
        _forgotten[key] = _forgotten.get(key, 0) + 1


def _warm_caches(community_id: int, refresh: bool = False) -> None:
    """Fill this process's caches of the community's setup, rules and issued account (refresh: read
    the setup and rules again even when fresh)."""
    from app.ledger import service as ledger
    from app.ledger.models import SystemAccount

    with Session(get_engine(), expire_on_commit=False) as session:
        load_setup(session, community_id, refresh)
        rules.resolver(session, community_id, refresh)
        ledger.system_account_id(session, community_id, SystemAccount.issued)
        session.commit()  # the account id is cached once committed


# The cache fills under way, one per (engine URL, community) and event loop: the scans that find the
# caches cold at once wait for one fill, and a refresh ahead of expiry is started once.
_filling: dict[tuple[str, int], asyncio.Future] = {}
# After a failed refresh, the next one waits this long (else every scan of the cache's last second
# would start one against a database that just failed); a cold cache is filled at once regardless.
FILL_RETRY_SECONDS = 0.25
_fill_retry: dict[tuple[str, int], float] = {}


def _expiring(url: str, community_id: int) -> bool:
    """Whether the setup or rules cache the bin-side path reads expires within REFRESH_AHEAD."""
    soon = _time.monotonic() + REFRESH_AHEAD
    setup = _setups.get((url, community_id))
    return setup is None or setup[0] < soon or rules.cache_expires(url, community_id) < soon


def _fill(url: str, community_id: int, refresh: bool) -> asyncio.Future:
    """The fill of the caches under way for the community, started if none is: a task to await
    (a cold cache) or to leave running (a refresh ahead of expiry; its failure is logged, and the
    caches then expire and the next scan fills them itself)."""
    key = (url, community_id)
    loop = asyncio.get_running_loop()
    filling = _filling.get(key)
    if filling is None or filling.get_loop() is not loop:
        filling = _filling[key] = asyncio.ensure_future(run_in_threadpool(_warm_caches, community_id, refresh))
        filling.add_done_callback(lambda done: _filled(key, done))
    return filling


def _filled(key: tuple[str, int], done: asyncio.Future) -> None:
    if _filling.get(key) is done:
        del _filling[key]
    failure = None if done.cancelled() else done.exception()
    if failure is not None:
        _fill_retry[key] = _time.monotonic() + FILL_RETRY_SECONDS
        log.warning("cache fill failed for community %s", key[1], exc_info=failure)


# --- what a scan is decided with ---------------------------------------------------------------

@dataclass(frozen=True)
class ScanContext:
    """What the scan statement's parameters are planned from: the setup, the rules in force at a
    time, the community's issued account (the other side of every credit)."""

    setup: Setup
    rules_at: Callable[[datetime], rules.Rules]
    issued_account_id: int


def cached_context(url: str, community_id: int) -> ScanContext | None:
    """The context from this process's caches (no database at hand), None when one is cold."""
    from app.ledger import service as ledger
    from app.ledger.models import SystemAccount

    setup = cached_setup((url, community_id))
    resolve = rules.cached_resolver(url, community_id)
    issued = ledger.cached_system_account_id(url, community_id, SystemAccount.issued)
    if setup is None or resolve is None or issued is None:
        return None
    return ScanContext(setup, resolve, issued)


def context(session: Session, community_id: int) -> ScanContext:
    """The context read in the caller's session (the caches are used while fresh)."""
    from app.ledger import service as ledger
    from app.ledger.models import SystemAccount

    return ScanContext(
        load_setup(session, community_id),
        rules.resolver(session, community_id),
        ledger.system_account_id(session, community_id, SystemAccount.issued),
    )


async def scan_context(community_id: int) -> ScanContext:
    """The context for scans on the event loop: from the caches; a cold cache is filled once for every
    scan waiting on it, one about to expire is refreshed in the background while the scans go on. A
    failed fill is logged and this scan reads its context itself."""
    url = engine_key(get_engine())
    found = cached_context(url, community_id)
    if found is None:
        try:
            await asyncio.shield(_fill(url, community_id, refresh=False))
        except Exception:  # logged by _filled
            pass
        found = cached_context(url, community_id)
        if found is None:
            found = await run_in_threadpool(_read_context, community_id)
    elif _expiring(url, community_id) and _time.monotonic() >= _fill_retry.get((url, community_id), 0.0):
        _fill(url, community_id, refresh=True)
    return found


def _read_context(community_id: int) -> ScanContext:
    with Session(get_engine(), expire_on_commit=False) as session:
        found = context(session, community_id)
        session.commit()  # the issued account, when this created it
        return found
