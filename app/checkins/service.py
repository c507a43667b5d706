"""Stations, windows, the scan's entry points (a single scan, an offline upload, a replay in a session),
reading check-ins, and corrections (a re-grade that amends a check, a reversal).

A scan of a door-plate code becomes one check-in row whatever its outcome; what that outcome is, and
what it earns, is decided in app.checkins.scan, the one place, for every entry point.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session
from sqlmodel import select as select_rows
from starlette.concurrency import run_in_threadpool

from app.audit import service as audit
from app.checkins import scan, setup, writer
from app.checkins.models import (
    AmendmentIn,
    CheckIn,
    CheckInAmendment,
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
)
from app.checkins.scan import Row
from app.core.db import get_engine, utcnow
from app.identity.auth import FIELD_STAFF, Principal, may_act_in
from app.kit.errors import BadRequest, Conflict, DomainError, Forbidden, NotFound, Unprocessable, not_found
from app.kit.pagination import page_by_id, page_by_keys
from app.kit.period import local_bounds
from app.kit.throttle import TooManyAttempts
from app.places import service as places
from app.places.models import HouseholdPublic
from app.rules import service as rules

CHECKIN = CheckIn.__table__
WINDOW = DropWindow.__table__
STATION = Station.__table__



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
    setup.SETUPS.invalidate(community_id)
    return station


def list_stations(session: Session, community_id: int, cursor: str | None, limit: int):
    return page_by_id(session, select_rows(Station).where(Station.community_id == community_id), Station.id, cursor, limit)


def update_station(session: Session, principal: Principal, station_id: int, data: StationUpdate) -> Station:
    station = get_station(session, station_id)
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    for k, v in changes.items():
        setattr(station, k, v)
    session.add(station)
    audit.record_act(session, principal, "station.update", station, station.community_id, changes=changes)
    _commit(session, "该投放点已存在", "This station already exists")
    setup.SETUPS.invalidate(station.community_id)
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
        if shared_days and other.start_time < window.end_time and window.start_time < other.end_time:
            raise Conflict(
                "window_overlap",
                f"与时段“{other.name}”重叠",
                f"Overlaps the window '{other.name}'",
                "start_time",
            )


def create_window(session: Session, principal: Principal, community_id: int, data: DropWindowCreate) -> DropWindow:
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
           start_time=str(window.start_time), end_time=str(window.end_time), weekdays=window.weekdays)
    session.commit()
    setup.SETUPS.invalidate(community_id)
    return window


def list_windows(session: Session, community_id: int, cursor: str | None, limit: int):
    """In the order of the day (by start time)."""
    stmt = select_rows(DropWindow).where(DropWindow.community_id == community_id)
    return page_by_keys(session, stmt, [DropWindow.start_time, DropWindow.id], cursor, limit)


def update_window(session: Session, principal: Principal, window_id: int, data: DropWindowUpdate) -> DropWindow:
    window = get_window(session, window_id)
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    for k, v in changes.items():
        setattr(window, k, v)
    if window.end_time <= window.start_time:
        raise BadRequest("invalid_window", "结束时间须晚于开始时间", "The window must end after it starts", "end_time")
    window.weekdays = "".join(sorted(set(window.weekdays)))
    _check_overlap(session, window.community_id, window)
    session.add(window)
    audit.record_act(session, principal, "drop_window.update", window, window.community_id,
           changes={k: str(v) for k, v in changes.items()})
    _commit(session, "同名的投放时段已存在", "A window with this name already exists")
    setup.SETUPS.invalidate(window.community_id)
    return window


# --- scanning: every entry point plans its scans and writes them with app.checkins.scan's statement ---

def _unique(scans: list[ScanIn], now: datetime) -> list[ScanIn]:
    """The scans to write, earliest first (the daily cap grants a household's day in scan order); a
    client id sent twice in one upload is one scan: its first."""
    first = {s.client_id: s for s in reversed(scans)}
    return sorted(first.values(), key=lambda s: (s.scanned_at or now, s.client_id))


def _answers(scans: list[ScanIn], written: dict[str, Row]) -> list[ScanResult]:
    """Each scan's answer, in the order sent; a client id's repeats are replays of its first."""
    out: list[dict[str, Any]] = []
    answered: set[str] = set()
    for s in scans:
        checkin_id, status, reason, household_id, points, replayed, first_id, first_result = written[s.client_id]
        out.append({
            "client_id": s.client_id, "status": status, "reason": reason, "checkin_id": checkin_id,
            "household_id": household_id, "points": points, "replayed": replayed or s.client_id in answered,
            "duplicate_of": first_id, "first_result": first_result,
        })
        answered.add(s.client_id)
    # One validation of the whole list in pydantic-core: a fifth of the cost of 1,000 model_construct calls.
    return _SCAN_RESULTS.validate_python(out)


_SCAN_RESULTS = TypeAdapter(list[ScanResult])


def record_scans(session: Session, principal: Principal, community_id: int, scans: list[ScanIn]) -> list[ScanResult]:
    """Scans written in the caller's session, and committed: the demo generator's replay of a day."""
    ctx = setup.context(session, community_id)
    now = utcnow()
    unique = _unique(scans, now)
    rows = scan.write_in_session(session, [scan.plan(ctx, principal, community_id, s, now) for s in unique])
    session.commit()
    return _answers(scans, {s.client_id: row for s, row in zip(unique, rows, strict=True)})


async def record_one(principal: Principal, community_id: int, data: ScanIn) -> ScanResult:
    """A single scan, on the event loop: a batch of one, written with the scans this process receives
    meanwhile (app.checkins.writer) — one statement on an asyncio connection, no thread hop, no ORM."""
    ctx = await setup.scan_context(community_id)
    plan = scan.plan(ctx, principal, community_id, data, utcnow())
    if plan["typed"]:
        await run_in_threadpool(_typing, principal, [plan], None)
    row = await writer.write(plan)
    if plan["typed"]:
        await run_in_threadpool(_typing, principal, [plan], [row])
    return _answers([data], {data.client_id: row})[0]


def _typing(principal: Principal, plans: list[dict[str, Any]], rows: list[Row] | None) -> None:
    """The typed-code throttle around a write of typed scans (rare: the scans' path has no session):
    before (rows None) refuse a locked-out volunteer, after count the typed codes that named no one."""
    with Session(get_engine()) as session:
        if rows is None:
            scan.refuse_typing_if_locked(session, principal)  # 429: a single scan's answer, a batch holds its typed scans
        else:
            misses = sum(1 for p, r in zip(plans, rows, strict=True) if p["typed"] and r[2] == RejectReason.unknown_code.value)
            scan.count_typing_misses(session, principal, misses)


async def answer_one(principal: Principal, community_id: int, data: ScanIn) -> tuple[int, ScanResult]:
    """(HTTP status, result) of a single scan: 201 when recorded now, 200 for a duplicate or a replay;
    a rejection raises its DomainError. Shared by the route and its lean ASGI twin (app.checkins.fastpath),
    each of which has checked `auth.may_scan` first."""
    result = await record_one(principal, community_id, data)
    if result.status == ScanStatus.rejected:
        raise reject_error(result)
    return (200 if result.status == ScanStatus.duplicate or result.replayed else 201), result


async def record_upload(principal: Principal, community_id: int, scans: list[ScanIn]) -> list[ScanResult]:
    """An offline upload: the same plans and statement as a single scan, in statements of its own."""
    ctx = await setup.scan_context(community_id)
    now = utcnow()
    unique = _unique(scans, now)
    plans = [scan.plan(ctx, principal, community_id, s, now) for s in unique]
    held: set[int] = set()  # typed scans of a volunteer locked out of typing: answered, not written
    if any(p["typed"] for p in plans):
        try:
            await run_in_threadpool(_typing, principal, plans, None)
        except TooManyAttempts:
            held = {i for i, p in enumerate(plans) if p["typed"]}
    written = iter(await writer.write_patiently([p for i, p in enumerate(plans) if i not in held]))
    # A held scan is not stored: the queue sends it again after the lockout and it is decided then.
    rows: list[Row] = [(None, ScanStatus.rejected.value, RejectReason.too_many_attempts.value, None, 0, False, None, None) if i in held else next(written)
                       for i in range(len(plans))]
    if any(p["typed"] for i, p in enumerate(plans) if i not in held):
        await run_in_threadpool(_typing, principal, plans, rows)
    return _answers(scans, {s.client_id: row for s, row in zip(unique, rows, strict=True)})


def reject_error(result: ScanResult) -> DomainError:
    """The error a rejected single scan answers with (offline batches report the reason per scan)."""
    reason = result.reason
    if reason == RejectReason.forged_code:
        return BadRequest("forged_code", "二维码无效或已被篡改", "Invalid or forged household code", "payload")
    if reason == RejectReason.unknown_code:
        return NotFound("unknown_code", "未找到该门牌对应的住户，请核对二维码或手工输入码（不含 0、O、1、I）",
                        "No household has this code: check the QR code or the typed code (it has no 0, O, 1 or I)", "payload")
    if reason == RejectReason.unknown_station:
        return NotFound("unknown_station", "投放点不存在或已停用", "Unknown or inactive station", "station_id")
    if reason == RejectReason.other_community:
        return Forbidden("other_community", "该住户不属于本社区", "This household is in another community", "payload")
    if reason == RejectReason.moved_out:
        return Forbidden("moved_out", "该住户已迁出，不能记录", "This household has moved out", "payload")
    if reason == RejectReason.own_household:
        return Forbidden("own_household", "不能为自己家记录，请由其他志愿者扫码", "You cannot record for your own household: ask another volunteer", "payload")
    if reason == RejectReason.client_id_taken:
        return Conflict("client_id_taken", "该编号已被其他人使用，请重新生成后再发送", "Another user already sent this client id: make a new one", "client_id")
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
    community_id: int,
    *,
    household_id: int | None,
    status: ScanStatus | None,
    start: date | None,
    end: date | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[CheckInPublic], str | None]:
    """Scanned on local days [start, end]."""
    lo, hi = local_bounds(setup.load_setup(session, community_id).tz, start, end)
    stmt = select_rows(CheckIn).where(CheckIn.community_id == community_id)
    if household_id is not None:
        stmt = stmt.where(CheckIn.household_id == household_id)
    if status is not None:
        stmt = stmt.where(CheckIn.status == status.value)
    if lo is not None:
        stmt = stmt.where(CheckIn.scanned_at >= lo)
    if hi is not None:
        stmt = stmt.where(CheckIn.scanned_at < hi)
    rows, next_cursor = page_by_id(session, stmt, CheckIn.id, cursor, limit)
    return _public(rows, rules.reversed_ids(session, "checkin", [r.id for r in rows])), next_cursor


def household_checkins(session: Session, household_id: int, cursor: str | None, limit: int) -> tuple[list[CheckInPublic], str | None]:
    stmt = select_rows(CheckIn).where(CheckIn.household_id == household_id, CheckIn.status != ScanStatus.rejected.value)
    rows, next_cursor = page_by_id(session, stmt, CheckIn.id, cursor, limit)
    return _public(rows, rules.reversed_ids(session, "checkin", [r.id for r in rows])), next_cursor


def stats(session: Session, community_id: int, start: date | None, end: date | None) -> CheckInStats:
    """Participation and sorting accuracy over local days [start, end]: counts what was checked."""
    tz = setup.load_setup(session, community_id).tz
    end = end or utcnow().astimezone(tz).date()
    start = start or end - timedelta(days=29)
    if start > end:
        raise BadRequest("invalid_period", "起始日期晚于截止日期", "The start is after the end", "start")
    lo = datetime.combine(start, time.min, tz)
    hi = datetime.combine(end + timedelta(days=1), time.min, tz)
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
            rules.not_reversed("checkin", CHECKIN.c.id),  # a corrected check (wrong household) was not a check
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

def _credit_key(session: Session, checkin: CheckIn) -> str | None:
    """The ledger key of the credit a check's points stand on now: its own, or that of the latest
    re-grade to correct; None when it holds no points."""
    if checkin.points <= 0:
        return None
    latest = session.scalars(
        select(CheckInAmendment.credit_key)
        .where(CheckInAmendment.checkin_id == checkin.id, CheckInAmendment.credit_key.is_not(None))
        .order_by(CheckInAmendment.id.desc()).limit(1)
    ).first()
    return latest or f"checkin:{checkin.id}"


def amend_checkin(session: Session, principal: Principal, checkin_id: int, data: AmendmentIn) -> CheckInPublic:
    """Re-grade a check after the resident re-sorted on the spot (二次分拣): the window's one check
    changes its grade, recorded as an amendment, and its points follow — a check re-graded correct earns
    what the rules in force at its scan give (under that day's cap), one re-graded incorrect has its
    credit reversed. Re-sending the same grade changes nothing (retry-safe)."""
    checkin = session.get(CheckIn, checkin_id, with_for_update=True)
    if checkin is None:
        raise not_found("督导记录", "Check-in", "checkin_id")
    if checkin.status != ScanStatus.accepted.value:
        raise Conflict("not_amendable", "只有有效的督导记录可以改判", "Only an accepted check can be re-graded")
    if rules.reversed_ids(session, "checkin", [checkin.id]):
        raise Conflict("already_reversed", "该记录已被冲正，不能改判", "This check has been corrected and cannot be re-graded")
    reasons = [r.value for r in data.reasons]
    if data.result.value == checkin.result and reasons == checkin.reasons:
        return _public([checkin], set())[0]
    if utcnow() - checkin.scanned_at > scan.MAX_AGE:
        raise Unprocessable("too_old", "检查已超过 72 小时，不能改判", "The check is too old to be re-graded", "checkin_id")
    amendment = CheckInAmendment(
        community_id=checkin.community_id, checkin_id=checkin.id, from_result=checkin.result,
        to_result=data.result.value, reasons=reasons, amended_by=principal.user_id,
    )
    session.add(amendment)
    session.flush()
    if data.result.value != checkin.result:
        if data.result == CheckResult.correct:
            in_force = rules.rules_at(session, checkin.community_id, checkin.scanned_at)
            asked = scan.earned(in_force, data.result.value)
            granted = rules.apply_daily_cap(session, in_force.daily_cap, [(checkin.household_id, checkin.window_date, asked)])[0]
            if granted > 0:
                from app.ledger import service as ledger
                from app.ledger.service import Credit

                amendment.credit_key = f"checkin-amend:{amendment.id}"
                ledger.post_credits(session, [Credit(
                    community_id=checkin.community_id, household_id=checkin.household_id, points=granted,
                    source="checkin", idempotency_key=amendment.credit_key, memo=scan.credit_memo(checkin.category) + "（改判）",
                    occurred_at=checkin.scanned_at, quantity_g=checkin.weight_g, category=checkin.category,
                )])
            amendment.points, checkin.points, checkin.credited = granted, granted, True
        else:
            key = _credit_key(session, checkin)
            if key is not None:
                from app.ledger import service as ledger

                ledger.reverse(
                    session, ledger.entry_by_key(session, key), reason="二次分拣改判：分类不正确",
                    actor_user_id=principal.user_id, idempotency_key=f"reverse:{key}",
                )
                rules.release_daily_cap(session, checkin.household_id, checkin.window_date, checkin.points)
            amendment.points, checkin.points, checkin.credited = -checkin.points, 0, False
    checkin.result, checkin.reasons = data.result.value, reasons
    session.add_all([checkin, amendment])
    audit.record_act(session, principal, "checkin.amend", checkin, checkin.community_id,
                     from_result=amendment.from_result, to_result=amendment.to_result, points=amendment.points)
    session.commit()
    return _public([checkin], set())[0]


def reverse_checkin(session: Session, principal: Principal, checkin_id: int, reason: str) -> CheckInPublic:
    """Correct a check-in (wrong household scanned...): the record stays, its points are reversed."""
    checkin = get_checkin(session, checkin_id)
    if checkin.status != ScanStatus.accepted.value:
        raise Conflict("not_reversible", "只有有效的督导记录可以冲正", "Only an accepted check-in can be corrected")
    rules.reverse_act(
        session,
        principal,
        community_id=checkin.community_id,
        act="checkin",
        act_id=checkin.id,
        credit_key=_credit_key(session, checkin),
        reason=reason,
        cap_day=(checkin.household_id, checkin.window_date, checkin.points) if checkin.points > 0 and checkin.window_date else None,
    )
    session.commit()
    return _public([checkin], {checkin.id})[0]


# --- shared with the other field acts (compost drops, weigh-ins) -------------------------------

typed = scan.typed  # typed (the hand-entry code) rather than scanned: each field act records which

def households_for_scans(session: Session, principal: Principal, community_id: int, payloads: list[str]) -> dict[str, int]:
    """Payload → the household a field act credits, by the scan statement's own definition
    (scan.households_for_payloads). Raises the error a single check-in would answer for the first
    payload it refuses (forged, unknown, not allowed): all or nothing."""
    found = scan.households_for_payloads(session, principal, community_id, payloads)
    for payload in payloads:
        if isinstance(found[payload], RejectReason):
            raise reject_error(ScanResult.model_construct(client_id="", status=ScanStatus.rejected, reason=found[payload]))
    return found  # type: ignore[return-value]


def resolve_scan(session: Session, principal: Principal, payload: str) -> HouseholdPublic:
    """The household behind a scanned or typed code, for a volunteer about to record (POST /scan/resolve),
    refused as a scan of it would be (scan.households_for_payloads): forged, unknown, another
    community's, moved out, the volunteer's own. The community is the household's, where the caller
    must be field staff; anywhere else the household is another community's."""
    code = scan.public_code(payload)
    household = places.household_by_code(session, code) if code else None
    community_id = -1  # no community: the household is another community's, unless the caller works in its own
    if household is not None and may_act_in(session, principal, household.community_id, FIELD_STAFF):
        community_id = household.community_id
    found = households_for_scans(session, principal, community_id, [payload])[payload]
    return places.read_household(session, found)
