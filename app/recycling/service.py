"""Recycling-day rules: rates, schedules and exceptions → dated events, weigh-ins and points,
destinations (去向), and the iCalendar feed residents subscribe to.

Who may ask is the routes' business (app/recycling/auth.py): the functions here trust their caller,
and check only what depends on the row or the body. Callers outside HTTP (the demo generator) act as
the community's own staff.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session
from sqlmodel import select as select_rows

from app.audit import service as audit
from app.checkins import service as checkins
from app.checkins import setup as field_setup
from app.core.config import get_settings
from app.core.db import utcnow
from app.core.security import same_secret
from app.identity.auth import BACKDATERS, Principal, authorize
from app.kit.errors import BadRequest, Conflict, NotFound, not_found
from app.kit.pagination import page_by_id, page_by_keys
from app.kit.sql import among, answered, fresh_and_stored, insert_new, own_replay
from app.places import service as places
from app.recycling.groups import WasteGroup, default_group, group_names
from app.recycling.models import (
    DestinationCreate,
    EventCategory,
    EventCategoryIn,
    EventCategoryPublic,
    EventCreate,
    EventPublic,
    EventStatus,
    ExceptionAction,
    ExceptionCreate,
    RecyclingDestination,
    RecyclingEvent,
    RecyclingException,
    RecyclingRate,
    RecyclingRatePublic,
    RecyclingSchedule,
    ScheduleCreate,
    WeighIn,
    WeighInCreate,
    WeighInPublic,
)
from app.rules import service as rules

HORIZON_DAYS = 365  # events are generated this far ahead of a schedule's start (or today)
MAX_OCCURRENCES = 400
LATE_DAYS = 3  # weigh-ins may still be recorded (uploaded) this many days after the event
EVENT = RecyclingEvent.__table__
CATEGORY = EventCategory.__table__
WEIGH_IN = WeighIn.__table__





def _tz(session: Session, community_id: int) -> ZoneInfo:
    return field_setup.load_setup(session, community_id).tz


# --- rates -------------------------------------------------------------------------------------

def put_rate(session: Session, principal: Principal, community_id: int, code: str, data) -> tuple[RecyclingRatePublic, bool]:
    """Create or change a category and its rate. Its waste group is the one sent, else the one it has,
    else the code's default (app.recycling.groups)."""
    rate = session.scalars(
        select(RecyclingRate).where(RecyclingRate.community_id == community_id, RecyclingRate.code == code)
    ).first()
    created = rate is None
    values = data.model_dump()
    values["unit"] = data.unit.value
    group = values.pop("waste_group", None)
    if rate is None:
        rate = RecyclingRate(community_id=community_id, code=code, waste_group=(group or default_group(code)).value, **values)
    else:
        for k, v in values.items():
            setattr(rate, k, v)
        if group is not None:
            rate.waste_group = group.value
        rate.updated_at = utcnow()
    session.add(rate)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict("duplicate", "该品类已存在", "This category already exists") from None
    audit.record_act(session, principal, "recycling_rate.put", rate, community_id, code=code,
                     **data.model_dump(mode="json", exclude={"waste_group"}), waste_group=rate.waste_group)
    session.commit()
    return rate_public(session, community_id, [rate])[0], created


def set_waste_group(session: Session, principal: Principal, community_id: int, code: str, group: WasteGroup) -> RecyclingRatePublic:
    """The committee places one of its categories in a waste group (audited with the group it had)."""
    rate = session.scalars(
        select(RecyclingRate).where(RecyclingRate.community_id == community_id, RecyclingRate.code == code).with_for_update()
    ).first()
    if rate is None:
        raise not_found("回收品类", "Recycling category", "code")
    before = rate.waste_group
    if before != group.value:
        rate.waste_group, rate.updated_at = group.value, utcnow()
        session.add(rate)
        audit.record_act(session, principal, "recycling_rate.waste_group", rate, community_id, code=code,
                         before=before, after=group.value)
    session.commit()
    return rate_public(session, community_id, [rate])[0]


def rate_public(session: Session, community_id: int, rates: list[RecyclingRate]) -> list[RecyclingRatePublic]:
    names = group_names(places.community_city(session, community_id))
    return [RecyclingRatePublic.model_validate(r, update={"waste_group_name": names[WasteGroup(r.waste_group)]}) for r in rates]


def list_rates(session: Session, community_id: int, cursor: str | None, limit: int) -> tuple[list[RecyclingRatePublic], str | None]:
    """By category code."""
    stmt = select_rows(RecyclingRate).where(RecyclingRate.community_id == community_id)
    rates, next_cursor = page_by_keys(session, stmt, [RecyclingRate.code, RecyclingRate.id], cursor, limit)
    return rate_public(session, community_id, list(rates)), next_cursor


# --- schedules and events ----------------------------------------------------------------------

def _rule(schedule: RecyclingSchedule | ScheduleCreate):
    text = schedule.rrule.strip().upper()
    if text.startswith("RRULE:"):
        text = text[6:]
    if any(part in text for part in ("DTSTART", "UNTIL=")):
        raise BadRequest("invalid_rrule", "重复规则中不能包含开始或截止时间，请使用对应字段", "Put start and end dates in their own fields, not in the RRULE", "rrule")
    freq = next((p.split("=", 1)[1] for p in text.split(";") if p.startswith("FREQ=")), None)
    if freq not in ("DAILY", "WEEKLY", "MONTHLY", "YEARLY"):
        raise BadRequest("invalid_rrule", "重复规则须按天、周、月或年（FREQ=DAILY/WEEKLY/MONTHLY/YEARLY）", "FREQ must be DAILY, WEEKLY, MONTHLY or YEARLY", "rrule")
    until = f";UNTIL={schedule.until.strftime('%Y%m%d')}T235959" if schedule.until else ""
    try:
        return rrulestr(text + until, dtstart=datetime.combine(schedule.starts_on, time.min))
    except Exception:  # dateutil raises ValueError, TypeError, KeyError... on malformed rules
        raise BadRequest("invalid_rrule", "重复规则格式不正确", "Malformed recurrence rule (RRULE)", "rrule") from None


def _occurrences(schedule: RecyclingSchedule, through: date) -> list[date]:
    """Occurrence dates up to `through`, at most MAX_OCCURRENCES (walked lazily, never listed whole)."""
    out = []
    for dt in _rule(schedule):
        if dt.date() > through or len(out) >= MAX_OCCURRENCES:
            break
        out.append(dt.date())
    return out


def _at(day: date, t: time, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, t, tz).astimezone(ZoneInfo("UTC"))


def _event_row(schedule: RecyclingSchedule, day: date, tz: ZoneInfo, exception: RecyclingException | None) -> dict[str, Any]:
    row = {
        "community_id": schedule.community_id,
        "schedule_id": schedule.id,
        "original_date": day,
        "occurs_on": day,
        "starts_at": _at(day, schedule.start_time, tz),
        "ends_at": _at(day, schedule.end_time, tz),
        "place": schedule.place,
        "name": schedule.name,
        "status": EventStatus.scheduled.value,
        "note": "",
        "created_at": utcnow(),
    }
    if exception is not None:
        row |= _apply_exception(schedule, exception, tz)
    return row


def _apply_exception(schedule: RecyclingSchedule, ex: RecyclingException, tz: ZoneInfo) -> dict[str, Any]:
    if ex.action == ExceptionAction.cancel:
        return {"status": EventStatus.cancelled.value, "note": ex.note}
    day = ex.new_date or ex.original_date
    return {
        "occurs_on": day,
        "starts_at": _at(day, ex.new_start_time or schedule.start_time, tz),
        "ends_at": _at(day, ex.new_end_time or schedule.end_time, tz),
        "place": ex.new_place or schedule.place,
        "note": ex.note,
        "status": EventStatus.scheduled.value,
    }


def _materialise(session: Session, schedule: RecyclingSchedule, through: date) -> int:
    """Create the schedule's events up to `through` (idempotent: existing dates are left alone)."""
    tz = _tz(session, schedule.community_id)
    if schedule.until is not None:
        through = min(through, schedule.until)
    days = _occurrences(schedule, through)
    if not days:
        return 0
    exceptions = {
        e.original_date: e
        for e in session.scalars(select(RecyclingException).where(RecyclingException.schedule_id == schedule.id))
    }
    rows = [_event_row(schedule, d, tz, exceptions.get(d)) for d in days]
    stmt = pg_insert(EVENT).on_conflict_do_nothing(index_elements=["schedule_id", "original_date"])
    session.execute(stmt, rows)
    return len(rows)


def create_schedule(session: Session, principal: Principal, community_id: int, data: ScheduleCreate) -> RecyclingSchedule:
    _rule(data)  # refuse a malformed rule before storing anything
    schedule = RecyclingSchedule(community_id=community_id, **data.model_dump())
    schedule.rrule = schedule.rrule.strip().upper().removeprefix("RRULE:")
    session.add(schedule)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict("duplicate", "同名、同首日的回收日安排已存在", "A schedule with this name and first date already exists") from None
    today = utcnow().astimezone(_tz(session, community_id)).date()
    count = _materialise(session, schedule, max(today, data.starts_on) + timedelta(days=HORIZON_DAYS))
    if count == 0:
        session.rollback()
        raise BadRequest("no_occurrences", "该规则没有产生任何日期", "The rule yields no dates", "rrule")
    audit.record_act(session, principal, "recycling_schedule.create", schedule, community_id, rrule=schedule.rrule, events=count)
    session.commit()
    return schedule


def get_schedule(session: Session, schedule_id: int) -> RecyclingSchedule:
    schedule = session.get(RecyclingSchedule, schedule_id)
    if schedule is None:
        raise not_found("回收日安排", "Recycling schedule", "schedule_id")
    return schedule


def list_schedules(session: Session, community_id: int, cursor: str | None, limit: int):
    stmt = select_rows(RecyclingSchedule).where(RecyclingSchedule.community_id == community_id)
    return page_by_id(session, stmt, RecyclingSchedule.id, cursor, limit)


def extend_schedule(session: Session, schedule_id: int, through: date) -> int:
    schedule = get_schedule(session, schedule_id)
    today = utcnow().astimezone(_tz(session, schedule.community_id)).date()
    if through > today + timedelta(days=3 * HORIZON_DAYS):
        raise BadRequest("too_far", "最多提前三年生成", "At most three years ahead", "through")
    count = _materialise(session, schedule, through)
    session.commit()
    return count


def add_exception(session: Session, principal: Principal, schedule_id: int, data: ExceptionCreate) -> EventPublic:
    """Cancel or move one occurrence; its event changes accordingly (kept, never deleted)."""
    schedule = get_schedule(session, schedule_id)
    if data.original_date not in _occurrences(schedule, data.original_date):
        raise BadRequest("not_an_occurrence", "该日期不是此安排的回收日", "That date is not an occurrence of this schedule", "original_date")
    tz = _tz(session, schedule.community_id)
    exception = RecyclingException(schedule_id=schedule_id, created_by=principal.user_id, **data.model_dump())
    exception.action = data.action.value
    end = exception.new_end_time or schedule.end_time
    start = exception.new_start_time or schedule.start_time
    if end <= start:
        raise BadRequest("invalid_times", "结束时间须晚于开始时间", "The end must be after the start", "new_end_time")
    session.add(exception)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict("duplicate", "该日期已有调整", "That date already has an exception") from None
    _materialise(session, schedule, data.original_date)
    event = session.scalars(
        select(RecyclingEvent).where(RecyclingEvent.schedule_id == schedule_id, RecyclingEvent.original_date == data.original_date)
    ).one()
    if data.action == ExceptionAction.cancel and _has_weigh_ins(session, event.id):
        session.rollback()
        raise Conflict("has_weigh_ins", "该回收日已有称重记录，不能取消", "The event already has weigh-ins")
    for k, v in _apply_exception(schedule, exception, tz).items():
        setattr(event, k, v)
    session.add(event)
    audit.record_act(session, principal, "recycling_schedule.exception", schedule, schedule.community_id, exception=data.model_dump(mode="json"))
    session.commit()
    return event_public(session, [event])[0]


def create_event(session: Session, principal: Principal, community_id: int, data: EventCreate) -> EventPublic:
    tz = _tz(session, community_id)
    closed = data.occurs_on < utcnow().astimezone(tz).date() - timedelta(days=LATE_DAYS)
    if closed and not data.backdate_reason:
        raise BadRequest("backdate_reason_required", "该回收日已结束超过 3 天：须由居委会填写补录原因",
                         "This day closed more than 3 days ago: the committee back-dates it with a reason", "backdate_reason")
    if data.backdate_reason and not closed:
        raise BadRequest("not_backdated", "回收日在 3 天内，无需补录原因", "Only a day closed more than 3 days ago is back-dated", "backdate_reason")
    if closed:
        authorize(session, principal, community_id, BACKDATERS)
    event = RecyclingEvent(
        community_id=community_id,
        occurs_on=data.occurs_on,
        starts_at=_at(data.occurs_on, data.start_time, tz),
        ends_at=_at(data.occurs_on, data.end_time, tz),
        place=data.place,
        name=data.name,
        backdate_reason=data.backdate_reason,
    )
    session.add(event)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict("duplicate", "当天该地点已有回收日", "There is already a recycling day at this place on that day") from None
    audit.record_act(session, principal, "recycling_event.create", event, community_id, occurs_on=str(data.occurs_on),
                     **({"backdate_reason": data.backdate_reason} if closed else {}))
    session.commit()
    return event_public(session, [event])[0]


def get_event(session: Session, event_id: int) -> RecyclingEvent:
    event = session.get(RecyclingEvent, event_id)
    if event is None:
        raise not_found("回收日", "Recycling event", "event_id")
    return event


def _categories(session: Session, events: list[RecyclingEvent]) -> dict[int, list[EventCategoryPublic]]:
    """Each event's categories: its own copy once frozen, else the community's active rates."""
    if not events:
        return {}
    own: dict[int, list[EventCategoryPublic]] = {}
    for c in session.scalars(select(EventCategory).where(EventCategory.event_id.in_([e.id for e in events])).order_by(EventCategory.code)):
        own.setdefault(c.event_id, []).append(EventCategoryPublic.model_validate(c))
    current: dict[int, list[EventCategoryPublic]] = {}
    for community_id in {e.community_id for e in events if e.id not in own}:
        current[community_id] = [
            EventCategoryPublic.model_validate(r)
            for r in session.scalars(
                select(RecyclingRate).where(RecyclingRate.community_id == community_id, RecyclingRate.active.is_(True)).order_by(RecyclingRate.code)
            )
        ]
    return {e.id: own.get(e.id, current.get(e.community_id, [])) for e in events}


def event_public(session: Session, events: list[RecyclingEvent]) -> list[EventPublic]:
    """With its day and times as they are entered (occurs_on, start_time, end_time: local) beside the
    instants they make (starts_at, ends_at)."""
    cats = _categories(session, events)
    zones = {c: _tz(session, c) for c in {e.community_id for e in events}}
    return [
        EventPublic.model_validate(e, update={
            "categories": cats[e.id], "backdated": e.backdate_reason is not None,
            "start_time": e.starts_at.astimezone(zones[e.community_id]).time(),
            "end_time": e.ends_at.astimezone(zones[e.community_id]).time(),
        })
        for e in events
    ]


def list_events(session: Session, community_id: int, start: date | None, end: date | None, cursor: str | None, limit: int):
    stmt = select_rows(RecyclingEvent).where(RecyclingEvent.community_id == community_id)
    if start is not None:
        stmt = stmt.where(RecyclingEvent.occurs_on >= start)
    if end is not None:
        stmt = stmt.where(RecyclingEvent.occurs_on <= end)
    rows, next_cursor = page_by_id(session, stmt, RecyclingEvent.id, cursor, limit)
    return event_public(session, list(rows)), next_cursor


def read_event(session: Session, event_id: int) -> EventPublic:
    event = get_event(session, event_id)
    return event_public(session, [event])[0]


def _has_weigh_ins(session: Session, event_id: int) -> bool:
    return session.execute(select(WEIGH_IN.c.id).where(WEIGH_IN.c.event_id == event_id).limit(1)).first() is not None


def set_categories(session: Session, principal: Principal, event_id: int, items: list[EventCategoryIn]) -> EventPublic:
    """Fix what this event accepts and at which rates (before its first weigh-in)."""
    event = get_event(session, event_id)
    if len({i.code for i in items}) != len(items):
        raise BadRequest("duplicate_category", "品类代码重复", "A category code appears twice", "code")
    if _has_weigh_ins(session, event_id):
        raise Conflict("has_weigh_ins", "已有称重记录，不能再修改品类和积分标准", "The event already has weigh-ins: its rates are fixed")
    session.execute(CATEGORY.delete().where(CATEGORY.c.event_id == event_id))
    if items:
        session.execute(CATEGORY.insert(), [{"event_id": event_id, **i.model_dump(mode="json")} for i in items])
    audit.record_act(session, principal, "recycling_event.categories", event, event.community_id, codes=[i.code for i in items])
    session.commit()
    return event_public(session, [event])[0]


def _freeze(session: Session, event: RecyclingEvent) -> dict[str, EventCategoryPublic]:
    """At the first weigh-in an event keeps a copy of the rates it used (concurrency-safe)."""
    cats = _categories(session, [event])[event.id]
    own = session.execute(select(CATEGORY.c.id).where(CATEGORY.c.event_id == event.id).limit(1)).first()
    if own is None and cats:
        stmt = pg_insert(CATEGORY).on_conflict_do_nothing(index_elements=["event_id", "code"])
        session.execute(stmt, [{"event_id": event.id, **c.model_dump(mode="json")} for c in cats])
        cats = _categories(session, [event])[event.id]
    return {c.code: c for c in cats}


# --- weigh-ins ---------------------------------------------------------------------------------

def _weigh_in_public(session: Session, rows: list[WeighIn], vouchers: dict[int, Any] | None = None) -> list[WeighInPublic]:
    """Weigh-ins as answered; a walk-in's points cheque (`vouchers`, by weigh-in) shows its code."""
    gone = rules.reversed_ids(session, "weigh_in", [r.id for r in rows])
    shown = {i: {"voucher_code": v.claim_code, "voucher_label_svg": v.label_svg} for i, v in (vouchers or {}).items()}
    return [
        WeighInPublic.model_validate(r, update={"reversed": r.id in gone, "backdated": r.backdate_reason is not None, **shown.get(r.id, {})})
        for r in rows
    ]


def record_weigh_in(session: Session, principal: Principal, event_id: int, data: WeighInCreate) -> tuple[WeighInPublic, bool]:
    """One weigh-in (a household's code, or a walk-in paid with a points cheque). `record_weigh_ins` of
    one: (weigh-in, created), or its refusal raised."""
    return record_weigh_ins(session, principal, event_id, [data])[0]


def record_weigh_ins(
    session: Session, principal: Principal, event_id: int, batch: list[WeighInCreate], *, backdate_reason: str | None = None
) -> list[tuple[WeighInPublic, bool]]:
    """A recycling day's weigh-ins — one at the scales (`record_weigh_in`), the clerk's tablet uploading
    its queue, the demo generator's day — set-based, one commit: the one implementation of their rules.

    A client id stored before (or sent earlier in the batch) is answered with the stored weigh-in, not
    created. A new weigh-in needs the event scheduled and open (from its day to LATE_DAYS after), the
    household behind its code (the scan's definition, checkins) unless it is a walk-in, a category the
    event takes and its weight or count; it earns the event's rate, cut to the household's daily cap
    of the rules in force (today), credited through the ledger keyed by weigh-in. A walk-in's points go
    on a points cheque (积分支票) instead, its code shown to the issuing clerk, again on a replay. All or
    nothing: a refusal refuses the batch with its error (the answer of a single weigh-in). Each
    weigh-in's (weigh-in, created), in the order sent.

    With a `backdate_reason` (补录, the committee's: `record_backdated_weigh_ins`) the late window does
    not apply: the weigh-ins are marked back-dated and earn as on the event's day — points at the
    event's start, the daily cap of that day under the rules in force then.
    """
    event = get_event(session, event_id)
    community_id = event.community_id
    fresh, stored = fresh_and_stored(session, WeighIn, community_id, batch, principal.user_id)
    made: list[WeighIn] = []
    categories: dict[str, EventCategoryPublic] = {}
    if fresh:
        if event.status != EventStatus.scheduled:
            raise Conflict("event_cancelled", "该回收日已取消", "This recycling day was cancelled")
        now = utcnow()
        today = now.astimezone(_tz(session, community_id)).date()
        if today < event.occurs_on:
            raise Conflict("event_not_started", "回收日尚未开始", "This recycling day has not started yet")
        if today > event.occurs_on + timedelta(days=LATE_DAYS) and backdate_reason is None:
            raise Conflict("event_closed", "回收日已结束超过 3 天，须由居委会补录", "This recycling day closed more than 3 days ago: the committee back-dates it")
        households = checkins.households_for_scans(session, principal, community_id, [d.payload for d in fresh if d.payload is not None])
        categories = _freeze(session, event)
        rows: list[dict[str, Any]] = []
        for d in fresh:
            category = categories.get(d.category)
            if category is None:
                raise BadRequest("unknown_category", "本次回收日不接收该品类", "This recycling day does not take that category", "category")
            if category.unit == "kg" and d.weight_g is None:
                raise BadRequest("weight_required", "按重量计分的品类须填写重量", "This category is weighed: give weight_g", "weight_g")
            if category.unit == "item" and d.count is None:
                raise BadRequest("count_required", "按件计分的品类须填写件数", "This category is counted: give count", "count")
            rows.append({
                "community_id": community_id, "client_id": d.client_id, "event_id": event_id,
                "household_id": households[d.payload] if d.payload is not None else None,
                "category": category.code, "unit": category.unit, "weight_g": d.weight_g, "count": d.count,
                "points": category.points * d.weight_g // 1000 if category.unit == "kg" else category.points * d.count,
                "voucher_id": None, "recorded_by": principal.user_id, "recorded_at": now, "backdate_reason": backdate_reason,
                "typed": d.payload is not None and checkins.typed(d.payload),
            })
        ids = {c: i for i, c in insert_new(session, WEIGH_IN, rows)}
        if len(ids) < len(rows):  # the same client ids, uploaded at once by another device: that one won
            session.rollback()
            return record_weigh_ins(session, principal, event_id, batch, backdate_reason=backdate_reason)
        for r in rows:
            r["id"] = ids[r["client_id"]]
        # Points as on the day of the act: a back-dated weigh-in earns at the event's start, that day's cap.
        act_day, act_at = (event.occurs_on, event.starts_at) if backdate_reason is not None else (today, now)
        _credit_weigh_ins(session, community_id, act_day, act_at, categories, [r for r in rows if r["household_id"] is not None],
                          backdated=backdate_reason is not None)
        made = list(session.scalars(select(WeighIn).where(among(session, WeighIn.id, list(ids.values())))))
    weigh_ins = list(stored.values()) + made
    # A walk-in's cheque: issued for a new one, its code shown again to the issuing clerk on a replay.
    names = {c.code: c.name for c in categories.values()}
    vouchers = {
        w.id: _walk_in_voucher(session, principal, w, names.get(w.category, w.category))
        for w in weigh_ins
        if w.household_id is None and w.points > 0 and w.recorded_by == principal.user_id
    }
    public = {w.client_id: p for w, p in zip(weigh_ins, _weigh_in_public(session, weigh_ins, vouchers), strict=True)}
    session.commit()
    return answered(batch, public, stored)


def record_backdated_weigh_ins(session: Session, principal: Principal, event_id: int, reason: str, batch: list[WeighInCreate]) -> list[tuple[WeighInPublic, bool]]:
    """Weigh-ins of a past recycling day entered after its late window (补录) by the committee, with
    the reason written on each weigh-in and in the audit log."""
    event = get_event(session, event_id)
    reason = reason.strip()
    done = record_weigh_ins(session, principal, event_id, batch, backdate_reason=reason)
    created = [w.id for w, new in done if new]
    if created:
        audit.record_act(session, principal, "recycling_event.backdate_weigh_ins", event, event.community_id,
                         reason=reason, weigh_ins=created)
        session.commit()
    return done


def _credit_weigh_ins(
    session: Session, community_id: int, today: date, now: datetime, categories: dict[str, EventCategoryPublic], rows: list[dict[str, Any]],
    *, backdated: bool = False,
) -> None:
    """Daily cap (rules.cap_rows, the rules in force at `now`, on local day `today`: the act's), then
    one ledger call for the households' points, keyed by weigh-in."""
    from app.ledger import service as ledger
    from app.ledger.service import Credit

    earning = [r for r in rows if r["points"] > 0]
    if not earning:
        return
    cap = rules.rules_at(session, community_id, now).daily_cap
    rules.cap_rows(session, WEIGH_IN, earning, lambda _: cap, lambda _: today)
    ledger.post_credits(
        session,
        [
            Credit(
                community_id=community_id,
                household_id=r["household_id"],
                points=r["points"],
                source="recycling",
                idempotency_key=f"weighin:{r['id']}",
                memo=("补录 " if backdated else "") + f"资源回收日 {categories[r['category']].name} "
                + (f"{r['weight_g'] / 1000:.1f} kg" if r["unit"] == "kg" else f"{r['count']} 件"),
                occurred_at=now,
                quantity_g=r["weight_g"],
                category=r["category"],
            )
            for r in earning
            if r["points"] > 0
        ],
    )


def _walk_in_voucher(session: Session, principal: Principal, row: WeighIn, name: str):
    """A walk-in resident's points go on a points cheque (积分支票) to claim into a passbook later.
    Keyed by the weigh-in: a re-sent weigh-in shows the same code to the same clerk, posts nothing."""
    from app.vouchers import service as vouchers

    amount = f"{row.weight_g / 1000:.1f} kg" if row.unit == "kg" else f"{row.count} 件"
    voucher, code, replayed = vouchers.issue_voucher(
        session,
        community_id=row.community_id,
        points=row.points,
        idempotency_key=f"weighin:{row.id}",
        actor_user_id=principal.user_id,
        memo=f"资源回收日 {name} {amount}",
    )
    row.voucher_id = voucher.id
    community = places.get_community(session, row.community_id)
    return vouchers.issued_public(voucher, code, replayed, community.name)


def list_weigh_ins(session: Session, event_id: int, cursor: str | None, limit: int):
    rows, next_cursor = page_by_id(session, select_rows(WeighIn).where(WeighIn.event_id == event_id), WeighIn.id, cursor, limit)
    return _weigh_in_public(session, list(rows)), next_cursor


def get_weigh_in(session: Session, weigh_in_id: int) -> WeighIn:
    row = session.get(WeighIn, weigh_in_id)
    if row is None:
        raise not_found("称重记录", "Weigh-in", "weigh_in_id")
    return row


def reverse_weigh_in(session: Session, principal: Principal, weigh_in_id: int, reason: str) -> WeighInPublic:
    """Corrections are reversals: the weigh-in stays, its points are taken back by a ledger entry."""
    row = get_weigh_in(session, weigh_in_id)
    reversal = rules.reverse_act(
        session,
        principal,
        community_id=row.community_id,
        act="weigh_in",
        act_id=row.id,
        credit_key=f"weighin:{row.id}" if row.household_id is not None and row.points > 0 else None,
        reason=reason,
        cap_day=(row.household_id, rules.aware(row.recorded_at).astimezone(_tz(session, row.community_id)).date(), row.points)
        if row.household_id is not None and row.points > 0
        else None,
    )
    if row.voucher_id is not None:
        # A walk-in's points went on a cheque: cancel it (and take back a claim already made).
        from app.vouchers import service as vouchers

        reversal.entry_id = vouchers.cancel(session, row.voucher_id, reason=reason, actor_user_id=principal.user_id)
        session.add(reversal)
        audit.record_act(session, principal, "voucher.cancel", vouchers.get_voucher(session, row.voucher_id), row.community_id, weigh_in_id=row.id, reason=reason)
    session.commit()
    return _weigh_in_public(session, [row])[0]


# --- destinations (去向) -----------------------------------------------------------------------

def add_destination(session: Session, principal: Principal, event_id: int, data: DestinationCreate) -> RecyclingDestination:
    event = get_event(session, event_id)
    existing = own_replay(session.scalars(
        select(RecyclingDestination).where(RecyclingDestination.event_id == event_id, RecyclingDestination.client_id == data.client_id)
    ).first(), principal.user_id)
    if existing is not None:
        return existing
    row = RecyclingDestination(
        community_id=event.community_id, event_id=event_id, recorded_by=principal.user_id, **data.model_dump(exclude={"kind"}), kind=data.kind.value
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        return session.scalars(
            select(RecyclingDestination).where(RecyclingDestination.event_id == event_id, RecyclingDestination.client_id == data.client_id)
        ).one()
    audit.record_act(session, principal, "recycling_destination.create", row, event.community_id, **data.model_dump(mode="json"))
    session.commit()
    return row


def list_destinations(session: Session, event_id: int, cursor: str | None, limit: int):
    stmt = select_rows(RecyclingDestination).where(RecyclingDestination.event_id == event_id)
    return page_by_id(session, stmt, RecyclingDestination.id, cursor, limit)


def took_part(session: Session, principal: Principal, event_id: int) -> bool:
    """Whether one of the caller's households weighed something in at the event."""
    if not principal.household_ids:
        return False
    return session.execute(
        select(WEIGH_IN.c.id).where(WEIGH_IN.c.event_id == event_id, WEIGH_IN.c.household_id.in_(principal.household_ids)).limit(1)
    ).first() is not None


def household_destinations(session: Session, household_id: int, cursor: str | None, limit: int):
    """Where the things went, for the recycling days this household took part in."""
    events = select(WEIGH_IN.c.event_id).where(WEIGH_IN.c.household_id == household_id).distinct()
    stmt = select_rows(RecyclingDestination).where(RecyclingDestination.event_id.in_(events))
    return page_by_id(session, stmt, RecyclingDestination.id, cursor, limit)


# --- the iCalendar feed ------------------------------------------------------------------------

def feed_key(community_id: int) -> str:
    secret = get_settings().resolved_jwt_secret().encode()
    return hmac.new(secret, f"recycling-ical:{community_id}".encode(), hashlib.sha256).hexdigest()[:32]


def calendar_link(community_id: int, base_url: str) -> str:
    return f"{base_url.rstrip('/')}/ical/communities/{community_id}/recycling.ics?key={feed_key(community_id)}"


def calendar_feed(session: Session, community_id: int, key: str) -> bytes:
    """The community's recycling days as iCalendar; cancelled days stay with STATUS:CANCELLED
    so subscribed calendars drop them. Unlisted URL: a signed key instead of a sign-in."""
    from icalendar import Calendar, Event

    if not same_secret(feed_key(community_id), key):
        raise NotFound("not_found", "日历不存在", "Calendar not found")
    community = places.get_community(session, community_id)
    tz = ZoneInfo(community.timezone)
    today = utcnow().astimezone(tz).date()
    events = session.scalars(
        select(RecyclingEvent)
        .where(RecyclingEvent.community_id == community_id, RecyclingEvent.occurs_on >= today - timedelta(days=90))
        .order_by(RecyclingEvent.starts_at)
        .limit(1000)
    ).all()
    cats = _categories(session, list(events))
    cal = Calendar()
    cal.add("prodid", "-//jianfei//recycling days//ZH")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", f"{community.name} 资源回收日")
    cal.add("x-wr-timezone", community.timezone)
    for e in events:
        ev = Event()
        ev.add("uid", f"recycling-event-{e.id}@jianfei")
        ev.add("dtstamp", utcnow())
        ev.add("summary", e.name)
        ev.add("dtstart", e.starts_at.astimezone(tz))
        ev.add("dtend", e.ends_at.astimezone(tz))
        ev.add("location", e.place)
        accepted = "、".join(c.name for c in cats[e.id])
        lines = [f"接收：{accepted}" if accepted else "", e.note]
        ev.add("description", "\n".join(x for x in lines if x))
        ev.add("status", "CANCELLED" if e.status == EventStatus.cancelled else "CONFIRMED")
        cal.add_component(ev)
    cal.add_missing_timezones()
    return cal.to_ical()



# --- for reminders -----------------------------------------------------------------------------

def scheduled_events_on(session: Session, day: date, community_ids: list[int]) -> list[RecyclingEvent]:
    """Events still scheduled on `day` (local date) in these communities: the reminder job asks here."""
    if not community_ids:
        return []
    return list(
        session.scalars(
            select(RecyclingEvent)
            .where(
                RecyclingEvent.community_id.in_(community_ids),
                RecyclingEvent.occurs_on == day,
                RecyclingEvent.status == EventStatus.scheduled.value,
            )
            .order_by(RecyclingEvent.id)
        )
    )


def backdated(community_ids: list[int] | tuple[int, ...], start: date | None, end: date) -> list:
    """SQL conditions (weigh_in joined to recycling_event): the back-dated weigh-ins of days [start, end]."""
    cond = [WEIGH_IN.c.community_id.in_(list(community_ids) or [-1]), WEIGH_IN.c.backdate_reason.is_not(None),
            EVENT.c.occurs_on <= end]
    if start is not None:
        cond.append(EVENT.c.occurs_on >= start)
    return cond


def backdated_weigh_ins(session: Session, community_ids: list[int] | tuple[int, ...], start: date | None, end: date) -> int:
    """Back-dated (补录) weigh-ins of recycling days on local days [start, end] (start None: since the start). For reports."""
    cond = backdated(community_ids, start, end)
    return int(session.execute(
        select(func.count()).select_from(WEIGH_IN.join(EVENT, EVENT.c.id == WEIGH_IN.c.event_id)).where(*cond)
    ).scalar_one())
