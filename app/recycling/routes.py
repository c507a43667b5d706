"""HTTP routes for recycling days: rates, schedules, events, weigh-ins, destinations, calendar."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from sqlmodel import Field, SQLModel

from app.core.db import SessionDep
from app.kit.errors import error_responses
from app.kit.fields import Day
from app.kit.pagination import DEFAULT_LIMIT, Cursor, Limit, Page
from app.recycling import service
from app.recycling.auth import (
    CommunityManager,
    CommunityResidentOrStaff,
    EventBackdater,
    EventClerk,
    EventFieldStaff,
    EventManager,
    EventResidentOrStaff,
    EventStaff,
    EventStaffOrParticipant,
    HouseholdMemberOrStaff,
    ScheduleManager,
    WeighInCorrector,
)
from app.recycling.groups import WasteGroup
from app.recycling.models import (
    BackdatedWeighIns,
    CalendarLink,
    DestinationCreate,
    DestinationPublic,
    EventCategoryIn,
    EventCreate,
    EventPublic,
    ExceptionCreate,
    RateUnit,
    RecyclingRatePublic,
    ScheduleCreate,
    SchedulePublic,
    WeighInCreate,
    WeighInPublic,
)
from app.reports.measures import waste
from app.rules.models import ReversalCreate

api = APIRouter(prefix="/api/v1", tags=["recycling days"])
feed = APIRouter(tags=["recycling days"])
READ = error_responses(400, 401, 403, 404, 422)
WRITE = error_responses(400, 401, 403, 404, 409, 422)


class RateIn(SQLModel):
    name: str = Field(min_length=1, max_length=30, description="品类名称，如 牛奶盒")
    unit: RateUnit
    points: int = Field(ge=0, le=100_000, description="每公斤或每件积分")
    notes: str = Field(default="", max_length=300, description="接收要求")
    active: bool = True
    waste_group: WasteGroup | None = Field(default=None, description="所属垃圾类别；不填时保持原值，新品类按代码取默认（如 paint、battery 为有害垃圾）")


class WasteGroupIn(SQLModel):
    waste_group: WasteGroup = Field(description="recyclable 可回收物、hazardous 有害垃圾、kitchen 厨余垃圾、other 其他垃圾")


class Extend(SQLModel):
    through: Day = Field(description="生成到该日期（含）")


class Generated(SQLModel):
    events: int


class CategoryTotal(SQLModel):
    category: str
    waste_group: WasteGroup = Field(description="所属垃圾类别")
    weight_g: int = Field(description="重量（克），走访居民、0 分和超出每日上限的称重都计入；冲正的不计")
    count: int
    points: int
    weigh_ins: int
    households: int = Field(description="参与的住户（含领取了积分支票的住户）")
    walk_ins: int = Field(description="走访居民的称重次数（积分支票）")


@api.put("/communities/{community_id}/recycling-rates/{code}", summary="Set a recycling category and its rate (per kg or per item)", response_model=RecyclingRatePublic, responses={201: {"model": RecyclingRatePublic, "description": "Created"}, **WRITE})
def put_rate(session: SessionDep, principal: CommunityManager, community_id: int, code: Annotated[str, Path(min_length=1, max_length=30, pattern=r"^[a-z0-9_]+$")], data: RateIn, response: Response):
    rate, created = service.put_rate(session, principal, community_id, code, data)
    if created:
        response.status_code = 201
    return rate


@api.put("/communities/{community_id}/recycling-rates/{code}/waste-group", summary="Place a recycling category in a waste group (GB/T 19095-2019; committee, audited)", response_model=RecyclingRatePublic, responses=WRITE)
def set_waste_group(session: SessionDep, principal: CommunityManager, community_id: int, code: Annotated[str, Path(min_length=1, max_length=30, pattern=r"^[a-z0-9_]+$")], data: WasteGroupIn):
    return service.set_waste_group(session, principal, community_id, code, data.waste_group)


@api.get("/communities/{community_id}/recycling-rates", summary="The community's recycling categories and rates", response_model=Page[RecyclingRatePublic], responses=READ)
def list_rates(session: SessionDep, principal: CommunityResidentOrStaff, community_id: int, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT):
    items, next_cursor = service.list_rates(session, community_id, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)


@api.post("/communities/{community_id}/recycling-schedules", summary="Create a recurring recycling day (RRULE) and its events", status_code=201, response_model=SchedulePublic, responses=WRITE)
def create_schedule(session: SessionDep, principal: CommunityManager, community_id: int, data: ScheduleCreate):
    return service.create_schedule(session, principal, community_id, data)


@api.get("/communities/{community_id}/recycling-schedules", summary="Recurring recycling days of a community", response_model=Page[SchedulePublic], responses=READ)
def list_schedules(session: SessionDep, principal: CommunityResidentOrStaff, community_id: int, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT):
    items, next_cursor = service.list_schedules(session, community_id, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)


@api.post("/recycling-schedules/{schedule_id}/extend", summary="Generate the schedule's events further ahead", response_model=Generated, responses=WRITE)
def extend_schedule(session: SessionDep, principal: ScheduleManager, schedule_id: int, data: Extend):
    return Generated(events=service.extend_schedule(session, schedule_id, data.through))


@api.post("/recycling-schedules/{schedule_id}/exceptions", summary="Cancel or move one occurrence", status_code=201, response_model=EventPublic, responses=WRITE)
def add_exception(session: SessionDep, principal: ScheduleManager, schedule_id: int, data: ExceptionCreate):
    return service.add_exception(session, principal, schedule_id, data)


@api.post("/communities/{community_id}/recycling-events", summary="Create a one-off recycling day", status_code=201, response_model=EventPublic, responses=WRITE)
def create_event(session: SessionDep, principal: CommunityManager, community_id: int, data: EventCreate):
    return service.create_event(session, principal, community_id, data)


@api.get("/communities/{community_id}/recycling-events", summary="Recycling days of a community (residents and staff)", response_model=Page[EventPublic], responses=READ)
def list_events(
    session: SessionDep,
    principal: CommunityResidentOrStaff,
    community_id: int,
    start: date | None = None,
    end: date | None = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
):
    items, next_cursor = service.list_events(session, community_id, start, end, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)


@api.get("/recycling-events/{event_id}", summary="Read a recycling day with what it accepts", response_model=EventPublic, responses=READ)
def read_event(session: SessionDep, principal: EventResidentOrStaff, event_id: int):
    return service.read_event(session, event_id)


@api.put("/recycling-events/{event_id}/categories", summary="Set what a recycling day accepts and its rates (before the first weigh-in)", response_model=EventPublic, responses=WRITE)
def set_categories(session: SessionDep, principal: EventManager, event_id: int, data: list[EventCategoryIn]):
    return service.set_categories(session, principal, event_id, data)


@api.post(
    "/recycling-events/{event_id}/weigh-ins",
    summary="Record a weigh-in (household code or walk-in): points from the rate",
    status_code=201,
    response_model=WeighInPublic,
    responses={200: {"model": WeighInPublic, "description": "Sent before (same client id)"}, **WRITE},
)
def record_weigh_in(session: SessionDep, principal: EventFieldStaff, event_id: int, data: WeighInCreate, response: Response):
    row, created = service.record_weigh_in(session, principal, event_id, data)
    if not created:
        response.status_code = 200
    return row


@api.post(
    "/recycling-events/{event_id}/backdated-weigh-ins",
    summary="Back-date weigh-ins of a past recycling day (补录, the committee, with a reason): they earn as on that day",
    status_code=201,
    response_model=list[WeighInPublic],
    responses=WRITE,
)
def record_backdated_weigh_ins(session: SessionDep, principal: EventBackdater, event_id: int, data: BackdatedWeighIns):
    return [w for w, _ in service.record_backdated_weigh_ins(session, principal, event_id, data.reason, data.weigh_ins)]


@api.get("/recycling-events/{event_id}/weigh-ins", summary="Weigh-ins of a recycling day", response_model=Page[WeighInPublic], responses=READ)
def list_weigh_ins(session: SessionDep, principal: EventStaff, event_id: int, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT):
    items, next_cursor = service.list_weigh_ins(session, event_id, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)


@api.get("/recycling-events/{event_id}/totals", summary="Totals of a recycling day by category (the report's waste measures)",
          description="One row per category the day weighed (a short fixed list): one page, `next_cursor` always null.",
          response_model=Page[CategoryTotal], responses=READ)
def event_totals(session: SessionDep, principal: EventStaff, event_id: int):
    return Page(items=waste.event_totals(session, event_id))


@api.post("/weigh-ins/{weigh_in_id}/reverse", summary="Correct a weigh-in by reversal (never by editing)", response_model=WeighInPublic, responses=WRITE)
def reverse_weigh_in(session: SessionDep, principal: WeighInCorrector, weigh_in_id: int, data: ReversalCreate):
    return service.reverse_weigh_in(session, principal, weigh_in_id, data.reason)


@api.post("/recycling-events/{event_id}/destinations", summary="Record where a collected batch went (去向)", status_code=201, response_model=DestinationPublic, responses=WRITE)
def add_destination(session: SessionDep, principal: EventClerk, event_id: int, data: DestinationCreate):
    return service.add_destination(session, principal, event_id, data)


@api.get("/recycling-events/{event_id}/destinations", summary="Where a recycling day's batches went (staff, and residents who took part)", response_model=Page[DestinationPublic], responses=READ)
def list_destinations(session: SessionDep, principal: EventStaffOrParticipant, event_id: int, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT):
    items, next_cursor = service.list_destinations(session, event_id, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)


@api.get("/households/{household_id}/recycling-destinations", summary="Where the things went, for the recycling days a household took part in", response_model=Page[DestinationPublic], responses=READ)
def household_destinations(session: SessionDep, principal: HouseholdMemberOrStaff, household_id: int, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT):
    items, next_cursor = service.household_destinations(session, household_id, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)


@api.get("/communities/{community_id}/recycling-calendar-link", summary="Subscription link of the community's recycling-day calendar", response_model=CalendarLink, responses=READ)
def calendar_link(principal: CommunityResidentOrStaff, community_id: int, request: Request):
    return CalendarLink(url=service.calendar_link(community_id, str(request.base_url)))


@feed.get(
    "/ical/communities/{community_id}/recycling.ics",
    summary="Recycling days as an iCalendar feed (signed link, no sign-in: calendar apps cannot send tokens)",
    response_class=Response,
    responses={200: {"content": {"text/calendar": {}}, "description": "iCalendar"}, **error_responses(404, 422)},
)
def calendar_feed(session: SessionDep, community_id: int, key: Annotated[str, Query(min_length=8, max_length=64)]):
    body = service.calendar_feed(session, community_id, key)
    return Response(content=body, media_type="text/calendar; charset=utf-8")


# The feed lives outside /api: calendar apps fetch it without a token (the link carries a signed key).
router = APIRouter()
router.include_router(api)
router.include_router(feed)
