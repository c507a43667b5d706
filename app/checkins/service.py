"""Stations, windows and the scan workflow: validate, record, credit — set-based for offline batches.

A scan of a door-plate code becomes one check-in row whatever its outcome. The database decides the
two things that must hold under retries and concurrency: one row per (community, client id), so a
re-sent scan changes nothing, and one credited check-in per (household, window, day), so a second
scan in the same window is recorded as a duplicate. Points go through the ledger, keyed by check-in.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time as _time
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import TypeAdapter
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session
from sqlmodel import select as select_rows
from starlette.concurrency import run_in_threadpool

from app.audit import service as audit
from app.checkins import writer
from app.checkins.models import (
    CATEGORY_ZH,
    CheckIn,
    CheckInPublic,
    CheckInStats,
    CheckResult,
    DropWindow,
    DropWindowCreate,
    DropWindowUpdate,
    RejectReason,
    ScanIn,
    ScanResult,
    ScanStatus,
    Station,
    StationCreate,
    StationUpdate,
    WasteCategory,
)
from app.core.db import engine_key, get_engine, utcnow
from app.identity.auth import FIELD_STAFF, MANAGERS, STAFF_READ, Principal, authorize
from app.identity.models import Role
from app.kit.errors import BadRequest, Conflict, DomainError, Forbidden, NotFound, Unprocessable, not_found
from app.kit.pagination import page_by_id
from app.kit.sql import among, insert_new
from app.places import service as places
from app.rules import service as rules

CHECKIN = CheckIn.__table__
WINDOW = DropWindow.__table__
STATION = Station.__table__

FUTURE_SKEW = timedelta(minutes=5)  # phones' clocks drift; a little ahead is tolerated
MAX_AGE = timedelta(hours=72)  # an offline queue older than this is not credited
SETUP_CACHE_SECONDS = 5.0
# The bin-side path reloads the setup and rules caches this long before they expire, in the
# background, while the scans go on with the cached ones: under load they never expire. (They used
# to, every 5 s, and each scan arriving then waited for its own reload in a worker thread: every 5 s
# a stall of the process's scans, 75-180 ms in the server's own log under the ingest benchmark.)
REFRESH_AHEAD = 1.0
log = logging.getLogger(__name__)
CORRECTORS = MANAGERS | {Role.supervisor}


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


def _forget(session: Session, community_id: int) -> None:
    key = _cache_key(session, community_id)
    with _setup_lock:
        _setups.pop(key, None)
        _forgotten[key] = _forgotten.get(key, 0) + 1



def _commit(session: Session, zh: str, en: str) -> None:
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict("duplicate", zh, en) from None


# --- stations ----------------------------------------------------------------------------------

def get_station(session: Session, station_id: int) -> Station:
    station = session.get(Station, station_id)
    if station is None:
        raise not_found("投放点", "Station", "station_id")
    return station


def create_station(session: Session, principal: Principal, community_id: int, data: StationCreate) -> Station:
    places.get_community(session, community_id)
    authorize(session, principal, community_id, MANAGERS)
    if data.compound_id is not None and places.get_compound(session, data.compound_id).community_id != community_id:
        raise not_found("小区", "Compound", "compound_id")
    station = Station(community_id=community_id, **data.model_dump())
    session.add(station)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict("duplicate", "该投放点已存在", "This station already exists") from None
    audit.record_act(session, principal, "station.create", station, community_id, name=station.name)
    _commit(session, "该投放点已存在", "This station already exists")
    _forget(session, community_id)
    return station


def list_stations(session: Session, principal: Principal, community_id: int) -> list[Station]:
    places.get_community(session, community_id)
    authorize(session, principal, community_id, STAFF_READ)
    return list(session.scalars(select(Station).where(Station.community_id == community_id).order_by(Station.id)))


def update_station(session: Session, principal: Principal, station_id: int, data: StationUpdate) -> Station:
    station = get_station(session, station_id)
    authorize(session, principal, station.community_id, MANAGERS)
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    for k, v in changes.items():
        setattr(station, k, v)
    session.add(station)
    audit.record_act(session, principal, "station.update", station, station.community_id, changes=changes)
    _commit(session, "该投放点已存在", "This station already exists")
    _forget(session, station.community_id)
    return station


# --- drop-off windows --------------------------------------------------------------------------

def get_window(session: Session, window_id: int) -> DropWindow:
    window = session.get(DropWindow, window_id)
    if window is None:
        raise not_found("投放时段", "Drop-off window", "window_id")
    return window


def _check_overlap(session: Session, community_id: int, window: DropWindow) -> None:
    for other in session.scalars(
        select(DropWindow).where(DropWindow.community_id == community_id, DropWindow.active.is_(True))
    ):
        if other.id == window.id or not window.active:
            continue
        shared_days = set(other.weekdays) & set(window.weekdays)
        if shared_days and other.starts < window.ends and window.starts < other.ends:
            raise Conflict(
                "window_overlap",
                f"与时段“{other.name}”重叠",
                f"Overlaps the window '{other.name}'",
                "starts",
            )


def create_window(session: Session, principal: Principal, community_id: int, data: DropWindowCreate) -> DropWindow:
    places.get_community(session, community_id)
    authorize(session, principal, community_id, MANAGERS)
    window = DropWindow(community_id=community_id, **data.model_dump())
    window.weekdays = "".join(sorted(set(window.weekdays)))
    _check_overlap(session, community_id, window)
    session.add(window)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict("duplicate", "同名的投放时段已存在", "A window with this name already exists") from None
    audit.record_act(session, principal, "drop_window.create", window, community_id, name=window.name,
           starts=str(window.starts), ends=str(window.ends), weekdays=window.weekdays)
    session.commit()
    _forget(session, community_id)
    return window


def list_windows(session: Session, principal: Principal, community_id: int) -> list[DropWindow]:
    places.get_community(session, community_id)
    authorize(session, principal, community_id, STAFF_READ)
    return list(
        session.scalars(select(DropWindow).where(DropWindow.community_id == community_id).order_by(DropWindow.starts))
    )


def update_window(session: Session, principal: Principal, window_id: int, data: DropWindowUpdate) -> DropWindow:
    window = get_window(session, window_id)
    authorize(session, principal, window.community_id, MANAGERS)
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    for k, v in changes.items():
        setattr(window, k, v)
    if window.ends <= window.starts:
        raise BadRequest("invalid_window", "结束时间须晚于开始时间", "The window must end after it starts", "ends")
    window.weekdays = "".join(sorted(set(window.weekdays)))
    _check_overlap(session, window.community_id, window)
    session.add(window)
    audit.record_act(session, principal, "drop_window.update", window, window.community_id,
           changes={k: str(v) for k, v in changes.items()})
    _commit(session, "同名的投放时段已存在", "A window with this name already exists")
    _forget(session, window.community_id)
    return window


# --- scanning ----------------------------------------------------------------------------------

def _public_code(payload: str) -> str | None:
    try:
        return places.parse_qr_payload(payload)
    except DomainError:
        return None


_ACCEPTED, _REJECTED = ScanStatus.accepted.value, ScanStatus.rejected.value


def record_scans(session: Session, principal: Principal, community_id: int, scans: list[ScanIn]) -> list[ScanResult]:
    """The whole bin-side workflow for one scan or an offline batch, in a handful of statements.

    Validate each scan (code, household, station, time, window), record every scan in one
    multi-row insert that the unique constraints referee, then credit the accepted correct ones
    through the ledger in one call. Commits once. Results come back in the order sent.
    """
    authorize(session, principal, community_id, FIELD_STAFF)
    setup = load_setup(session, community_id)
    now = utcnow()

    # A client id sent twice in one batch is one scan.
    unique: dict[str, ScanIn] = {}
    for s in scans:
        unique.setdefault(s.client_id, s)

    codes = {s.client_id: _public_code(s.payload) for s in unique.values()}
    households = places.households_by_codes(session, {c for c in codes.values() if c})
    own = set(principal.household_ids)
    rules_for = rules.resolver(session, community_id)
    stations, latest, earliest = setup.stations, now + FUTURE_SKEW, now - MAX_AGE

    rows: list[dict[str, Any]] = []
    for s in unique.values():
        scanned_at = s.scanned_at or now
        code = codes[s.client_id]
        found = households.get(code) if code else None
        household_id = found[0] if found else None
        reason: RejectReason | None = None
        window: WindowSpec | None = None
        local = None
        if code is None:
            reason = RejectReason.forged_code
        elif found is None:
            reason = RejectReason.unknown_code
        elif found[1] != community_id or found[2] != "active" or household_id in own:
            reason = RejectReason.not_allowed
        elif s.station_id not in stations:
            reason = RejectReason.unknown_station
        elif scanned_at > latest:
            reason = RejectReason.in_future
        elif scanned_at < earliest:
            reason = RejectReason.too_old
        else:
            local = scanned_at.astimezone(setup.tz)  # only now: far-off times would overflow
            window = setup.window_at(local)
            if window is None:
                reason = RejectReason.outside_window
        credited = reason is None and s.result == CheckResult.correct
        points = rules_for(scanned_at).checkin_correct if credited else 0
        rows.append(
            {
                "client_id": s.client_id,
                "household_id": household_id if found and found[1] == community_id else None,
                "station_id": s.station_id if s.station_id in stations else None,
                "window_id": window.id if window else None,
                "window_date": local.date() if window and local else None,
                "category": s.category.value,
                "result": s.result.value,
                "reasons": [r.value for r in s.reasons] if s.reasons else [],
                "weight_g": s.weight_g,
                "photo_ref": s.photo_ref,
                "status": _REJECTED if reason else _ACCEPTED,
                "reject_reason": reason.value if reason else None,
                "credited": credited,
                "points": points,
                "scanned_at": scanned_at,
            }
        )
    same = {"community_id": community_id, "recorded_at": now, "recorded_by": principal.user_id}
    # One order for everyone (household, window, day, time): concurrent batches take the unique
    # index locks in the same order and cannot deadlock; within a batch the earliest scan wins.
    rows.sort(key=lambda r: (r["household_id"] or 0, r["window_id"] or 0, r["window_date"] or date.min, r["scanned_at"], r["client_id"]))

    by_client = {r["client_id"]: r for r in rows}
    stored: dict[str, int] = {}  # client id → id of a row inserted by this call
    replays: dict[str, dict[str, Any]] = {}  # client id → the answer given when it was first sent
    pending = rows
    for _ in range(3):
        stored.update((client_id, checkin_id) for checkin_id, client_id in insert_new(session, CHECKIN, pending, same))
        missing = [r["client_id"] for r in pending if r["client_id"] not in stored]
        if not missing:
            break
        # Either sent before (same client id: answer as then) or the window's slot is taken.
        replays.update(_stored_results(session, community_id, missing))
        pending = []
        for client_id in missing:
            if client_id not in replays:
                by_client[client_id] |= {"status": ScanStatus.duplicate.value, "credited": False, "points": 0}
                pending.append(by_client[client_id])
        if not pending:
            break
    else:  # a row that can be neither inserted nor found: only under pathological churn
        raise Conflict("scan_conflict", "扫码记录冲突，请重试", "Scan conflicts with another one, retry")

    credited = [(stored[c], by_client[c]) for c in stored if by_client[c]["credited"] and by_client[c]["points"] > 0]
    _credit(session, community_id, credited)
    session.commit()

    out: list[dict[str, Any]] = []
    answered: set[str] = set()
    for s in scans:
        if s.client_id in replays:
            out.append(replays[s.client_id])
        else:
            r = by_client[s.client_id]
            out.append(
                {
                    "client_id": s.client_id,
                    "status": r["status"],
                    "reason": r["reject_reason"],
                    "checkin_id": stored[s.client_id],
                    "household_id": r["household_id"],
                    "points": r["points"],
                    "replayed": s.client_id in answered,
                }
            )
        answered.add(s.client_id)
    # One validation of the whole list in pydantic-core: a fifth of the cost of 1,000 model_construct calls.
    return _SCAN_RESULTS.validate_python(out)


_SCAN_RESULTS = TypeAdapter(list[ScanResult])


# --- the bin-side scan: one statement, shared with the scans arriving with it (PostgreSQL) -------

async def record_one(principal: Principal, community_id: int, scan: ScanIn) -> ScanResult:
    """A single scan, on the event loop. On PostgreSQL the usual case — a field worker of this
    community, a genuine code of one of its active households, a known station, a time inside a
    window and a new client id — is one statement on an asyncio connection (check-in, daily-cap
    counter, journal entry, balance, postings; or the check-in alone when its window slot is already
    credited, a duplicate), which the scans this process receives meanwhile share (app.checkins.writer):
    the bin-side hot path, with no thread hop and no ORM. Anything else (a
    rejection, a replay, a lock conflict, another role) takes the general path in a worker thread,
    which answers it exactly as an offline batch would.
    """
    engine = get_engine()
    if principal.is_platform_admin or principal.community_grants(community_id) & FIELD_STAFF:
        url = engine_key(engine)
        plan = _plan_one(url, principal, community_id, scan)
        if plan is _COLD:
            try:
                await asyncio.shield(_fill(url, community_id, refresh=False))
            except Exception:  # logged by _filled; this scan still gets its answer from the general path
                plan = None
            else:
                plan = _plan_one(url, principal, community_id, scan)
        elif _expiring(url, community_id) and _time.monotonic() >= _fill_retry.get((url, community_id), 0.0):
            _fill(url, community_id, refresh=True)  # in the background: this scan goes on meanwhile
        if isinstance(plan, dict):
            row = await writer.write(plan)
            if row is not None:
                return ScanResult.model_construct(
                    client_id=scan.client_id, status=ScanStatus(row[3]), reason=None, checkin_id=row[0],
                    household_id=row[1], points=row[2], replayed=False,
                )
    return (await run_in_threadpool(_record_in_session, principal, community_id, [scan]))[0]


async def answer_one(principal: Principal, community_id: int, scan: ScanIn) -> tuple[int, ScanResult]:
    """(HTTP status, result) of a single scan: 201 when recorded now, 200 for a duplicate or a replay;
    a rejection raises its DomainError. Shared by the route and its lean ASGI twin (app.checkins.fastpath)."""
    result = await record_one(principal, community_id, scan)
    if result.status == ScanStatus.rejected:
        raise reject_error(result)
    return (200 if result.status == ScanStatus.duplicate or result.replayed else 201), result


async def record_upload(principal: Principal, community_id: int, scans: list[ScanIn]) -> list[ScanResult]:
    """An offline upload (record_scans) from an async route: the whole batch, its session included, in
    one trip to a worker thread. A sync route with a session dependency made four (session opened,
    the call, checking the answer, session closed), each a wait for a thread on a busy machine."""
    return await run_in_threadpool(_record_in_session, principal, community_id, scans)


def _record_in_session(principal: Principal, community_id: int, scans: list[ScanIn]) -> list[ScanResult]:
    with Session(get_engine(), expire_on_commit=False) as session:
        return record_scans(session, principal, community_id, scans)


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


_COLD = object()  # a cache the plan needs is empty

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


def _plan_one(url: str, principal: Principal, community_id: int, scan: ScanIn) -> dict[str, Any] | object | None:
    """The parameters of the one-statement check-in, None when the scan is not the usual case, or
    _COLD when a cache must be filled first. Pure Python: no database."""
    from app.ledger import service as ledger
    from app.ledger.models import Source, SystemAccount

    setup = cached_setup((url, community_id))
    resolve = rules.cached_resolver(url, community_id)
    issued = ledger.cached_system_account_id(url, community_id, SystemAccount.issued)
    if setup is None or resolve is None or issued is None:
        return _COLD
    now = utcnow()
    code = _public_code(scan.payload)
    scanned_at = scan.scanned_at or now
    if code is None or scan.station_id not in setup.stations or not now - MAX_AGE <= scanned_at <= now + FUTURE_SKEW:
        return None
    local = scanned_at.astimezone(setup.tz)
    window = setup.window_at(local)
    if window is None:
        return None
    credited = scan.result == CheckResult.correct
    in_force = resolve(scanned_at)
    points = in_force.checkin_correct if credited else 0
    return {
        "code": code,
        "community_id": community_id,
        "own": list(principal.household_ids),
        "day": local.date(),
        "points": points,
        "cap": in_force.daily_cap if points > 0 else None,
        "client_id": scan.client_id,
        "station_id": scan.station_id,
        "window_id": window.id,
        "category": scan.category.value,
        "result": scan.result.value,
        "reasons": [r.value for r in scan.reasons],
        "weight_g": scan.weight_g,
        "photo_ref": scan.photo_ref,
        "credited": credited,
        "scanned_at": scanned_at,
        "posted_at": now,
        "user_id": principal.user_id,
        "memo": credit_memo(scan.category.value),
        "ledger_source": Source.checkin.value,
        "issued_account_id": issued,
    }


def _stored_results(session: Session, community_id: int, client_ids: list[str]) -> dict[str, dict[str, Any]]:
    rows = session.execute(
        select(
            CHECKIN.c.client_id, CHECKIN.c.status, CHECKIN.c.reject_reason, CHECKIN.c.id,
            CHECKIN.c.household_id, CHECKIN.c.points,
        ).where(CHECKIN.c.community_id == community_id, among(session, CHECKIN.c.client_id, client_ids))
    ).all()
    return {
        cl: {"client_id": cl, "status": st, "reason": rr, "checkin_id": i, "household_id": h, "points": p, "replayed": True}
        for cl, st, rr, i, h, p in rows
    }


def credit_memo(category: str) -> str:
    """The passbook line of a credited check-in."""
    return f"桶边督导 {CATEGORY_ZH.get(category, category)} 分类正确"


def _credit(session: Session, community_id: int, credited: list[tuple[int, dict[str, Any]]]) -> None:
    """Post the points of newly credited check-ins: the daily cap, the points of check-ins it cuts and their credits through
    the ledger in one statement (one per daily cap in force: more than one only when the rules changed
    between the batch's scans). The rows travel as their ids; the statement reads the check-ins just stored.
    """
    if not credited:
        return
    from app.ledger import service as ledger
    from app.ledger.models import Source, SystemAccount

    rules_for = rules.resolver(session, community_id)
    by_cap: dict[int | None, dict[int, dict[str, Any]]] = {}
    for checkin_id, r in credited:
        by_cap.setdefault(rules_for(r["scanned_at"]).daily_cap, {})[checkin_id] = r
    params = {
        "community_id": community_id,
        "issued_account_id": ledger.system_account_id(session, community_id, SystemAccount.issued),
        "posted_at": utcnow(),
        "ledger_source": Source.checkin.value,
        "memos": _MEMOS,
    }
    connection = session.connection()
    for cap, rows in by_cap.items():
        for checkin_id, points in connection.exec_driver_sql(_credit_sql(), params | {"ids": list(rows), "cap": cap}):
            rows[checkin_id]["points"] = points


_MEMOS = json.dumps({c.value: credit_memo(c.value) for c in WasteCategory}, ensure_ascii=False)


@cache
def _credit_sql() -> str:
    from app.ledger.fragments import credits_ctes

    return f"""WITH asked AS (
    SELECT k.id, k.household_id, k.window_date AS day, k.points, k.scanned_at, k.weight_g, k.category
    FROM checkin AS k WHERE k.id = ANY(%(ids)s::bigint[])
),
{rules.daily_caps_sql("asked")},
cut AS (
    UPDATE checkin AS k SET points = c.points FROM capped AS c
    WHERE k.id = c.id AND c.points <> c.asked
    RETURNING k.id, k.points
),
memo AS (SELECT key AS category, value AS memo FROM json_each_text(%(memos)s::json)),
credit AS (
    SELECT a.household_id, c.points, 'checkin:' || a.id AS idempotency_key, m.memo,
           a.scanned_at AS occurred_at, a.weight_g AS quantity_g, a.category, a.id AS position
    FROM asked AS a JOIN capped AS c ON c.id = a.id JOIN memo AS m ON m.category = a.category
    WHERE c.points > 0
),
{credits_ctes("credit")}
SELECT id, points FROM cut"""


def reject_error(result: ScanResult) -> DomainError:
    """The error a rejected single scan answers with (offline batches report the reason per scan)."""
    reason = result.reason
    if reason == RejectReason.forged_code:
        return BadRequest("forged_code", "二维码无效或已被篡改", "Invalid or forged household code", "payload")
    if reason == RejectReason.unknown_code:
        return NotFound("unknown_code", "未找到该门牌对应的住户", "No household has this code", "payload")
    if reason == RejectReason.unknown_station:
        return NotFound("unknown_station", "投放点不存在或已停用", "Unknown or inactive station", "station_id")
    if reason == RejectReason.not_allowed:
        return Forbidden(
            "not_allowed",
            "不能为该住户记录（本人住户、已迁出或非本社区住户）",
            "Not allowed for this household (your own, moved out or in another community)",
            "payload",
        )
    if reason == RejectReason.in_future:
        return Unprocessable("in_future", "扫码时间晚于当前时间", "The scan time is in the future", "scanned_at")
    if reason == RejectReason.too_old:
        return Unprocessable("too_old", "扫码记录已超过 72 小时，不能补录", "The scan is too old to be recorded", "scanned_at")
    return Unprocessable("outside_window", "不在定时定点投放时段内", "Outside every drop-off window", "scanned_at")


# --- reading -----------------------------------------------------------------------------------

def get_checkin(session: Session, checkin_id: int) -> CheckIn:
    checkin = session.get(CheckIn, checkin_id)
    if checkin is None:
        raise not_found("督导记录", "Check-in", "checkin_id")
    return checkin


def _public(rows: list[CheckIn], reversed_ids: set[int]) -> list[CheckInPublic]:
    return [CheckInPublic.model_validate(r, update={"reversed": r.id in reversed_ids}) for r in rows]


def list_checkins(
    session: Session,
    principal: Principal,
    community_id: int,
    *,
    household_id: int | None,
    status: ScanStatus | None,
    start: datetime | None,
    end: datetime | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[CheckInPublic], str | None]:
    places.get_community(session, community_id)
    authorize(session, principal, community_id, STAFF_READ)
    stmt = select_rows(CheckIn).where(CheckIn.community_id == community_id)
    if household_id is not None:
        stmt = stmt.where(CheckIn.household_id == household_id)
    if status is not None:
        stmt = stmt.where(CheckIn.status == status.value)
    if start is not None:
        stmt = stmt.where(CheckIn.scanned_at >= start)
    if end is not None:
        stmt = stmt.where(CheckIn.scanned_at < end)
    rows, next_cursor = page_by_id(session, stmt, CheckIn.id, cursor, limit)
    return _public(rows, rules.reversed_ids(session, "checkin", [r.id for r in rows])), next_cursor


def household_checkins(
    session: Session, principal: Principal, household_id: int, cursor: str | None, limit: int
) -> tuple[list[CheckInPublic], str | None]:
    household = places.get_household(session, household_id)
    if household_id not in principal.household_ids:
        authorize(session, principal, household.community_id, STAFF_READ)
    stmt = select_rows(CheckIn).where(CheckIn.household_id == household_id, CheckIn.status != ScanStatus.rejected.value)
    rows, next_cursor = page_by_id(session, stmt, CheckIn.id, cursor, limit)
    return _public(rows, rules.reversed_ids(session, "checkin", [r.id for r in rows])), next_cursor


def stats(session: Session, principal: Principal, community_id: int, start: date | None, end: date | None) -> CheckInStats:
    """Participation and sorting accuracy over local days [start, end]: counts what was checked."""
    places.get_community(session, community_id)
    authorize(session, principal, community_id, STAFF_READ)
    setup = load_setup(session, community_id)
    end = end or utcnow().astimezone(setup.tz).date()
    start = start or end - timedelta(days=29)
    if start > end:
        raise BadRequest("invalid_period", "起始日期晚于截止日期", "The start is after the end", "start")
    lo = datetime.combine(start, time.min, setup.tz)
    hi = datetime.combine(end + timedelta(days=1), time.min, setup.tz)
    checks, correct, participants = session.execute(
        select(
            func.count(),
            func.count().filter(CHECKIN.c.result == CheckResult.correct.value),
            func.count(CHECKIN.c.household_id.distinct()),
        ).where(
            CHECKIN.c.community_id == community_id,
            CHECKIN.c.status == ScanStatus.accepted.value,
            CHECKIN.c.scanned_at >= lo,
            CHECKIN.c.scanned_at < hi,
        )
    ).one()
    registered = places.count_households(session, community_id)
    return CheckInStats(
        registered_households=registered,
        participating_households=participants,
        participation_rate=round(participants / registered, 4) if registered else 0.0,
        checks=checks,
        correct=correct,
        accuracy=round(correct / checks, 4) if checks else 0.0,
    )


# --- corrections -------------------------------------------------------------------------------

def reverse_checkin(session: Session, principal: Principal, checkin_id: int, reason: str) -> CheckInPublic:
    """Correct a check-in (wrong household scanned...): the record stays, its points are reversed."""
    checkin = get_checkin(session, checkin_id)
    authorize(session, principal, checkin.community_id, CORRECTORS)
    if checkin.status != ScanStatus.accepted.value:
        raise Conflict("not_reversible", "只有有效的督导记录可以冲正", "Only an accepted check-in can be corrected")
    rules.reverse_act(
        session,
        principal,
        community_id=checkin.community_id,
        act="checkin",
        act_id=checkin.id,
        credit_key=f"checkin:{checkin.id}" if checkin.points > 0 else None,
        reason=reason,
        cap_day=(checkin.household_id, checkin.window_date, checkin.points) if checkin.points > 0 and checkin.window_date else None,
    )
    session.commit()
    return _public([checkin], {checkin.id})[0]


# --- shared with the other field acts (compost drops, weigh-ins) -------------------------------

def household_for_scan(session: Session, principal: Principal, community_id: int, payload: str) -> int:
    """The household behind a scanned door-plate code, if staff may credit it in this community.

    Raises the same errors as a rejected single check-in (forged, unknown, not allowed).
    """
    code = _public_code(payload)
    found = places.households_by_codes(session, {code}).get(code) if code else None
    reason = None
    if code is None:
        reason = RejectReason.forged_code
    elif found is None:
        reason = RejectReason.unknown_code
    elif found[1] != community_id or found[2] != "active" or found[0] in principal.household_ids:
        reason = RejectReason.not_allowed
    if reason is not None:
        raise reject_error(ScanResult.model_construct(client_id="", status=ScanStatus.rejected, reason=reason))
    return found[0]


def households_for_scans(session: Session, principal: Principal, community_id: int, payloads: list[str]) -> dict[str, int]:
    """`household_for_scan` for a batch: payload → household id, in one query.

    Raises the error of the first payload that a single scan would refuse (all or nothing).
    """
    codes = {p: _public_code(p) for p in set(payloads)}
    found = places.households_by_codes(session, {c for c in codes.values() if c})
    out: dict[str, int] = {}
    for payload in payloads:
        code = codes[payload]
        hit = found.get(code) if code else None
        reason = None
        if code is None:
            reason = RejectReason.forged_code
        elif hit is None:
            reason = RejectReason.unknown_code
        elif hit[1] != community_id or hit[2] != "active" or hit[0] in principal.household_ids:
            reason = RejectReason.not_allowed
        if reason is not None:
            raise reject_error(ScanResult.model_construct(client_id="", status=ScanStatus.rejected, reason=reason))
        out[payload] = hit[0]
    return out
