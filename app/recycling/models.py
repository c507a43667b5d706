"""Recycling days: a community's rate table, recurring schedules with exceptions, the dated events
they generate (each with its own copy of the accepted categories and rates), weigh-ins, and the
destination (去向) of each collected batch.
"""

from __future__ import annotations

from datetime import date, datetime, time
from enum import StrEnum

from pydantic import model_validator
from sqlalchemy import Boolean, CheckConstraint, Column, Index, String, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from app.core.db import utcnow
from app.kit.columns import BigId, fk, pk
from app.kit.fields import Day, LocalTime
from app.recycling.groups import WasteGroup


class RateUnit(StrEnum):
    kg = "kg"  # points per kilogram
    item = "item"  # points per item (milk cartons, batteries)


class EventStatus(StrEnum):
    scheduled = "scheduled"
    cancelled = "cancelled"


class DestinationKind(StrEnum):
    collector = "collector"  # sold to a recycler / 回收商
    city = "city"  # city collection / 市政回收
    charity = "charity"  # donated through a charity / 公益捐赠
    other = "other"


# --- the community's rate table ------------------------------------------------------------------

class RecyclingRateBase(SQLModel):
    code: str = Field(min_length=1, max_length=30, schema_extra={"pattern": r"^[a-z0-9_]+$"}, description="品类代码，如 paper、milk_carton、battery、clothes")
    name: str = Field(min_length=1, max_length=30, description="品类名称，如 牛奶盒")
    unit: RateUnit
    points: int = Field(ge=0, le=100_000, description="每公斤或每件积分")
    notes: str = Field(default="", max_length=300, description="接收要求，如 内衣除外、7成新以上、清洗消毒")


class RecyclingRate(RecyclingRateBase, table=True):
    __tablename__ = "recycling_rate"
    __table_args__ = (
        UniqueConstraint("community_id", "code"),
        CheckConstraint("waste_group IN ('recyclable', 'hazardous', 'kitchen', 'other')", name="ck_recycling_rate_waste_group"),
    )
    id: int | None = Field(default=None, sa_column=pk())
    community_id: int = Field(sa_column=fk("community.id", index=False))
    unit: str = Field(sa_column=Column(String(6), nullable=False))
    # The GB/T 19095-2019 group the category's kilograms are reported under (app.recycling.groups).
    waste_group: str = Field(sa_column=Column(String(12), nullable=False))
    active: bool = True
    updated_at: datetime = Field(default_factory=utcnow)


class RecyclingRatePublic(RecyclingRateBase):
    id: int
    community_id: int
    active: bool
    waste_group: WasteGroup = Field(description="所属垃圾类别（GB/T 19095-2019）：recyclable 可回收物、hazardous 有害垃圾、kitchen 厨余垃圾、other 其他垃圾")
    waste_group_name: str = Field(default="", description="该类别在社区所在城市的名称（如上海：湿垃圾、干垃圾）")


# --- schedules and exceptions --------------------------------------------------------------------

class ScheduleBase(SQLModel):
    name: str = Field(default="资源回收日", min_length=1, max_length=40)
    rrule: str = Field(
        min_length=5, max_length=200, description="iCalendar RRULE，如 FREQ=WEEKLY;INTERVAL=2;BYDAY=SA 或 FREQ=MONTHLY;BYDAY=2SA"
    )
    starts_on: Day = Field(description="首次日期（社区当地日期）")
    until: Day | None = Field(default=None, description="截止日期（含）")
    start_time: LocalTime
    end_time: LocalTime
    place: str = Field(min_length=1, max_length=100, description="地点，如 北门广场")


class RecyclingSchedule(ScheduleBase, table=True):
    __tablename__ = "recycling_schedule"
    __table_args__ = (UniqueConstraint("community_id", "name", "starts_on"),)
    id: int | None = Field(default=None, sa_column=pk())
    community_id: int = Field(sa_column=fk("community.id"))
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)


class ScheduleCreate(ScheduleBase):
    @model_validator(mode="after")
    def _times(self):
        if self.end_time <= self.start_time:
            raise ValueError("end_time must be after start_time")
        if self.until is not None and self.until < self.starts_on:
            raise ValueError("until must not be before starts_on")
        return self


class SchedulePublic(ScheduleBase):
    id: int
    community_id: int
    active: bool


class ExceptionAction(StrEnum):
    cancel = "cancel"
    move = "move"


class RecyclingException(SQLModel, table=True):
    """A cancelled or moved occurrence of a schedule."""

    __tablename__ = "recycling_exception"
    __table_args__ = (UniqueConstraint("schedule_id", "original_date"),)
    id: int | None = Field(default=None, sa_column=pk())
    schedule_id: int = Field(sa_column=fk("recycling_schedule.id", index=False))
    original_date: date
    action: str = Field(sa_column=Column(String(8), nullable=False))
    new_date: date | None = None
    new_start_time: time | None = None
    new_end_time: time | None = None
    new_place: str | None = Field(default=None, max_length=100)
    note: str = Field(default="", max_length=200)
    created_by: int = Field(sa_column=fk("app_user.id", index=False))
    created_at: datetime = Field(default_factory=utcnow)


class ExceptionCreate(SQLModel):
    original_date: Day = Field(description="被取消或调整的那一次的原定日期")
    action: ExceptionAction
    new_date: Day | None = None
    new_start_time: LocalTime | None = None
    new_end_time: LocalTime | None = None
    new_place: str | None = Field(default=None, min_length=1, max_length=100)
    note: str = Field(default="", max_length=200, description="如 因雨顺延")

    @model_validator(mode="after")
    def _move_has_something(self):
        if self.action == ExceptionAction.move and not (
            self.new_date or self.new_start_time or self.new_end_time or self.new_place
        ):
            raise ValueError("a move needs a new date, time or place")
        return self


# --- events ------------------------------------------------------------------------------------

class RecyclingEvent(SQLModel, table=True):
    __tablename__ = "recycling_event"
    __table_args__ = (
        UniqueConstraint("schedule_id", "original_date"),
        # A one-off event is known by its day and place: creating it again is refused.
        Index(
            "ux_recycling_event_one_off", "community_id", "occurs_on", "place", unique=True,
            postgresql_where=text("schedule_id IS NULL"),
        ),
    )
    id: int | None = Field(default=None, sa_column=pk())
    community_id: int = Field(sa_column=fk("community.id"))
    schedule_id: int | None = Field(default=None, sa_column=fk("recycling_schedule.id", nullable=True, index=False))
    original_date: date | None = None
    occurs_on: date
    starts_at: datetime
    ends_at: datetime
    place: str = Field(max_length=100)
    name: str = Field(max_length=40)
    status: str = Field(default=EventStatus.scheduled.value, sa_column=Column(String(10), nullable=False))
    note: str = Field(default="", max_length=200)
    created_at: datetime = Field(default_factory=utcnow)
    # A past day entered after its late window (补录), on the committee's authority, and why.
    backdate_reason: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))


class EventCategory(SQLModel, table=True):
    """What an event accepts and at which rate: a copy of the community's rates when the event was made."""

    __tablename__ = "recycling_event_category"
    __table_args__ = (UniqueConstraint("event_id", "code"),)
    id: int | None = Field(default=None, sa_column=pk())
    event_id: int = Field(sa_column=fk("recycling_event.id", index=False))
    code: str = Field(max_length=30)
    name: str = Field(max_length=30)
    unit: str = Field(sa_column=Column(String(6), nullable=False))
    points: int
    notes: str = Field(default="", max_length=300)


class EventCategoryIn(SQLModel):
    code: str = Field(min_length=1, max_length=30, schema_extra={"pattern": r"^[a-z0-9_]+$"})
    name: str = Field(min_length=1, max_length=30)
    unit: RateUnit
    points: int = Field(ge=0, le=100_000)
    notes: str = Field(default="", max_length=300)


class EventCategoryPublic(EventCategoryIn):
    pass


class EventCreate(SQLModel):
    """A one-off recycling event (outside any schedule)."""

    name: str = Field(default="资源回收日", min_length=1, max_length=40)
    occurs_on: Day
    start_time: LocalTime
    end_time: LocalTime
    place: str = Field(min_length=1, max_length=100)
    backdate_reason: str | None = Field(default=None, min_length=4, max_length=200,
                                        description="补录原因（居委会）：3 天前已结束的回收日须填写")

    @model_validator(mode="after")
    def _times(self):
        if self.end_time <= self.start_time:
            raise ValueError("end_time must be after start_time")
        return self


class EventPublic(SQLModel):
    id: int
    community_id: int
    schedule_id: int | None
    original_date: date | None
    occurs_on: date = Field(description="日期（社区当地日期）")
    start_time: time = Field(description="开始时间（社区当地时间，同创建时所填）")
    end_time: time = Field(description="结束时间（社区当地时间）")
    starts_at: datetime = Field(description="开始时刻（UTC）：由 occurs_on 与 start_time 得出")
    ends_at: datetime = Field(description="结束时刻（UTC）")
    place: str
    name: str
    status: EventStatus
    note: str
    backdated: bool = Field(default=False, description="补录的过去回收日")
    backdate_reason: str | None = None
    categories: list[EventCategoryPublic] = []


# --- weigh-ins ---------------------------------------------------------------------------------

class WeighIn(SQLModel, table=True):
    __tablename__ = "weigh_in"
    __table_args__ = (UniqueConstraint("community_id", "client_id"),)
    id: int | None = Field(default=None, sa_column=pk())
    community_id: int = Field(sa_column=fk("community.id", index=False))
    client_id: str = Field(sa_column=Column(String(64), nullable=False))
    event_id: int = Field(sa_column=fk("recycling_event.id"))
    household_id: int | None = Field(default=None, sa_column=fk("household.id", nullable=True))
    category: str = Field(max_length=30)
    unit: str = Field(sa_column=Column(String(6), nullable=False))
    weight_g: int | None = None
    count: int | None = None
    points: int = 0
    # Walk-in residents are credited through a points cheque (积分支票) they claim into a passbook later.
    voucher_id: int | None = Field(default=None, sa_column=Column(BigId, nullable=True))
    recorded_by: int = Field(sa_column=fk("app_user.id", index=False))
    recorded_at: datetime = Field(default_factory=utcnow)
    typed: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default=text("false")))  # hand-entry code typed, not scanned
    # A weigh-in entered after the event's late window (补录), on the committee's authority, and why.
    backdate_reason: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))


class WeighInCreate(SQLModel):
    client_id: str = Field(min_length=8, max_length=64, schema_extra={"pattern": r"^[A-Za-z0-9_.:-]+$"}, description="重发时不变的唯一编号")
    payload: str | None = Field(default=None, min_length=1, max_length=200, description="门牌二维码内容或手工输入码（登记住户）")
    walk_in: bool = Field(default=False, description="未登记的居民（以积分支票计分）")
    category: str = Field(min_length=1, max_length=30)
    weight_g: int | None = Field(default=None, ge=1, le=1_000_000, description="重量（克）")
    count: int | None = Field(default=None, ge=1, le=10_000, description="件数（按件计分的品类）")

    @model_validator(mode="after")
    def _who(self):
        if self.walk_in == (self.payload is not None):
            raise ValueError("give either a door-plate payload or walk_in=true")
        return self


class WeighInPublic(SQLModel):
    id: int
    client_id: str
    event_id: int
    household_id: int | None
    category: str
    unit: RateUnit
    weight_g: int | None
    count: int | None
    points: int
    voucher_id: int | None
    recorded_by: int
    recorded_at: datetime
    typed: bool = Field(default=False, description="手工输入码录入（非扫码）")
    reversed: bool = False
    backdated: bool = Field(default=False, description="补录：回收日结束 3 天后由居委会录入")
    backdate_reason: str | None = None
    voucher_code: str | None = Field(default=None, description="走访居民的积分支票领取码（仅向签发人显示）")
    voucher_label_svg: str | None = Field(default=None, description="可打印的积分支票标签")


class BackdatedWeighIns(SQLModel):
    """Weigh-ins of a past recycling day entered after its late window (补录), with the committee's reason."""

    reason: str = Field(min_length=4, max_length=200, description="补录原因（记入审计日志与每条记录）")
    weigh_ins: list[WeighInCreate] = Field(min_length=1, max_length=500)


# --- where it went (去向) ----------------------------------------------------------------------

class DestinationBase(SQLModel):
    category: str = Field(min_length=1, max_length=30, description="品类代码")
    quantity_g: int | None = Field(default=None, ge=1, le=100_000_000, description="重量（克）")
    count: int | None = Field(default=None, ge=1, le=10_000_000, description="件数")
    kind: DestinationKind = Field(description="去向类型")
    destination: str = Field(min_length=1, max_length=100, description="去向，如 某再生资源公司、某公益项目")
    proceeds_fen: int | None = Field(default=None, ge=0, description="变卖所得（分）")
    note: str = Field(default="", max_length=300)


class RecyclingDestination(DestinationBase, table=True):
    __tablename__ = "recycling_destination"
    __table_args__ = (UniqueConstraint("event_id", "client_id"),)
    id: int | None = Field(default=None, sa_column=pk())
    client_id: str = Field(sa_column=Column(String(64), nullable=False))
    community_id: int = Field(sa_column=fk("community.id", index=False))
    event_id: int = Field(sa_column=fk("recycling_event.id"))
    kind: str = Field(sa_column=Column(String(10), nullable=False))
    recorded_by: int = Field(sa_column=fk("app_user.id", index=False))
    recorded_at: datetime = Field(default_factory=utcnow)


class DestinationCreate(DestinationBase):
    client_id: str = Field(min_length=8, max_length=64, schema_extra={"pattern": r"^[A-Za-z0-9_.:-]+$"}, description="重发时不变的唯一编号")

    @model_validator(mode="after")
    def _quantity(self):
        if self.quantity_g is None and self.count is None:
            raise ValueError("give a quantity in grams or a count")
        return self


class DestinationPublic(DestinationBase):
    id: int
    event_id: int
    recorded_at: datetime


class CalendarLink(SQLModel):
    url: str = Field(description="订阅地址（iCalendar），可加入手机日历")
