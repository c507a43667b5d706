"""A community's field setup — time zone, drop-off windows, stations — as the scan path reads it: from
this process's cache, filled and refreshed without holding up the scans."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from app.checkins.models import DropWindow, Station
from app.core.db import engine_key, get_engine
from app.kit import cache
from app.ledger import service as ledger
from app.ledger.models import SystemAccount
from app.places import service as places
from app.rules import service as rules

WINDOW = DropWindow.__table__
STATION = Station.__table__


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


def _read_setup(session: Session, community_id: int) -> Setup:
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
    return Setup(ZoneInfo(community.timezone), windows, stations)


# By community id. Dropped by the check-in service after a change to a community's windows or stations.
SETUPS: cache.Cache[int, Setup] = cache.Cache("community setup", _read_setup, seconds=5.0)


def load_setup(session: Session, community_id: int, refresh: bool = False) -> Setup:
    """The community's stations and windows, from this process's cache while fresh (refresh: read
    them again anyway)."""
    return SETUPS.get(session, community_id, refresh)


def warm_caches(community_id: int, refresh: bool = False) -> None:
    """Fill this process's caches of the community's setup, rules and issued account (refresh: read
    the setup and rules again even when fresh)."""
    with Session(get_engine(), expire_on_commit=False) as session:
        load_setup(session, community_id, refresh)
        rules.resolver(session, community_id, refresh)
        ledger.system_account_id(session, community_id, SystemAccount.issued)
        session.commit()  # the account id is cached once committed


# The scan path's fills, by (engine URL, community id). The setup and rules caches are read again a
# second before they expire, in the background, while the scans go on with the cached ones: under load
# they never expire. (They used to, every 5 s, and each scan arriving then waited for its own reload in
# a worker thread: every 5 s a stall of the process's scans, 75-180 ms in the server's own log under
# the ingest benchmark.)
FILLS: cache.Filler[tuple[str, int]] = cache.Filler(
    "scan context fills", lambda key, refresh: warm_caches(key[1], refresh), refresh_ahead=1.0, retry_seconds=0.25
)


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
    setup = SETUPS.peek(url, community_id)
    resolve = rules.cached_resolver(url, community_id)
    issued = ledger.cached_system_account_id(url, community_id, SystemAccount.issued)
    if setup is None or resolve is None or issued is None:
        return None
    return ScanContext(setup, resolve, issued)


def context(session: Session, community_id: int) -> ScanContext:
    """The context read in the caller's session (the caches are used while fresh)."""
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
        await FILLS.wait((url, community_id))
        found = cached_context(url, community_id)
        if found is None:  # the fill failed (logged)
            found = await run_in_threadpool(_read_context, community_id)
    else:
        expires = min(SETUPS.expires_at(url, community_id), rules.RULES.expires_at(url, community_id))
        FILLS.refresh_if_expiring((url, community_id), expires)
    return found


def _read_context(community_id: int) -> ScanContext:
    with Session(get_engine(), expire_on_commit=False) as session:
        found = context(session, community_id)
        session.commit()  # the issued account, when this created it
        return found
