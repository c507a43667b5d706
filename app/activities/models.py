"""Activities recorded for monthly reports, and daily check-in challenges with streaks.

An activity counts attendances (人次) and, where known, unique people (人): the two are kept apart
because reports must not mix them. A challenge enrolment keeps its streak; a missed day ends it.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import model_validator
from sqlalchemy import JSON, Boolean, Column, ForeignKey, Index, String, UniqueConstraint, false
from sqlmodel import Field, SQLModel

from app.core.db import utcnow
from app.kit.columns import BigId, fk, pk
from app.kit.fields import Day


class ActivityKind(StrEnum):
    lecture = "lecture"  # 大讲堂
    class_ = "class"  # 小课堂
    game = "game"  # 游戏
    workshop = "workshop"  # 工作坊（如堆肥）
    recycling_day = "recycling_day"  # 资源回收日
    other = "other"


class ActivityBase(SQLModel):
    kind: ActivityKind
    title: str = Field(min_length=1, max_length=100)
    held_on: Day = Field(description="活动日期")
    place: str = Field(default="", max_length=100)
    duration_minutes: int = Field(default=60, ge=1, le=24 * 60)
    organisation_id: int | None = Field(default=None, description="主办的社会组织")
    participants: int = Field(ge=0, le=1_000_000, description="参与人次：本场到场的人次（含未登记姓名/门牌的）")
    unique_participants: int | None = Field(
        default=None, ge=0, le=1_000_000,
        description="本场的去重人数（已知时填写）；月报的“参与人数”只计按户登记的参与者（见 /activities/{id}/attendees），不加总此数",
    )
    direct_beneficiaries: int = Field(default=0, ge=0, le=10_000_000, description="直接受益人次")
    indirect_beneficiaries: int = Field(default=0, ge=0, le=100_000_000, description="间接受益人次（影响人次）")
    volunteers: int = Field(default=0, ge=0, le=100_000, description="志愿者参与人次")
    leaflets: int = Field(default=0, ge=0, le=10_000_000, description="发放宣传品")
    media_items: int = Field(default=0, ge=0, le=10_000, description="媒体报道/推文篇数（旧字段；月报按关联本活动的媒体记录计）")
    media_reads: int = Field(default=0, ge=0, le=1_000_000_000, description="阅读量（旧字段；月报按关联本活动的媒体记录计）")
    photo_refs: list[str] = Field(default_factory=list, max_length=30, description="照片引用")
    story: str = Field(default="", max_length=4000, description="活动故事")

    @model_validator(mode="after")
    def _people_within_attendances(self):
        if self.unique_participants is not None and self.unique_participants > self.participants:
            raise ValueError("unique participants (人) cannot exceed attendances (人次)")
        return self


class Activity(ActivityBase, table=True):
    __tablename__ = "activity"
    __table_args__ = (Index("ix_activity_community_held", "community_id", "held_on"), UniqueConstraint("community_id", "client_id"))
    id: int | None = Field(default=None, sa_column=pk())
    client_id: str = Field(sa_column=Column(String(64), nullable=False))
    community_id: int = Field(sa_column=fk("community.id", index=False))
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    organisation_id: int | None = Field(default=None, sa_column=fk("organisation.id", nullable=True, index=False))
    photo_refs: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_by: int = Field(sa_column=fk("app_user.id", index=False))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    # 补录: recorded more than LATE_DAYS after the day it was held, with the committee's reason if given.
    backdated: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default=false()))
    backdate_reason: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))


# An activity recorded more than this many days after it was held is back-dated (补录), as weigh-ins are.
LATE_DAYS = 3


class ActivityCreate(ActivityBase):
    client_id: str = Field(min_length=8, max_length=64, schema_extra={"pattern": r"^[A-Za-z0-9_.:-]+$"}, description="重发时不变的唯一编号")
    backdate_reason: str | None = Field(default=None, min_length=4, max_length=200,
                                        description="补录原因（居委会）：活动日期早于 3 天前的记录标为补录")


class ActivityUpdate(SQLModel):
    title: str | None = Field(default=None, min_length=1, max_length=100)
    held_on: Day | None = None
    place: str | None = Field(default=None, max_length=100)
    duration_minutes: int | None = Field(default=None, ge=1, le=24 * 60)
    participants: int | None = Field(default=None, ge=0, le=1_000_000)
    unique_participants: int | None = Field(default=None, ge=0, le=1_000_000)
    direct_beneficiaries: int | None = Field(default=None, ge=0, le=10_000_000)
    indirect_beneficiaries: int | None = Field(default=None, ge=0, le=100_000_000)
    volunteers: int | None = Field(default=None, ge=0, le=100_000)
    leaflets: int | None = Field(default=None, ge=0, le=10_000_000)
    media_items: int | None = Field(default=None, ge=0, le=10_000)
    media_reads: int | None = Field(default=None, ge=0, le=1_000_000_000)
    photo_refs: list[str] | None = Field(default=None, max_length=30)
    story: str | None = Field(default=None, max_length=4000)
    backdate_reason: str | None = Field(default=None, min_length=4, max_length=200,
                                        description="补录原因（居委会）：修改活动日期早于 3 天前的活动，或把日期改到 3 天前，须填写")


class ActivityPublic(ActivityBase):
    id: int
    community_id: int
    created_by: int
    backdated: bool = Field(default=False, description="补录：活动日期 3 天后才录入")
    backdate_reason: str | None = None


class ActivityTotals(SQLModel):
    """The period's activity figures, computed as the monthly report computes them (app.reports.measures.people)."""

    activities: int
    participants: int = Field(description="参与人次")
    people: int = Field(default=0, description="参与人数：按户登记的参与者，去重")
    activities_unnamed: int = Field(default=0, description="参与人次多于已登记参与者的活动场次")
    unnamed_attendances: int = Field(default=0, description="未登记参与者的人次")
    unique_participants_known: int = Field(description="各活动自填去重人数之和（仅含填写了的活动；不是人数，月报不用）")
    direct_beneficiaries: int
    indirect_beneficiaries: int
    volunteers: int
    leaflets: int
    media_items: int = Field(description="活动记录自填的报道篇数之和（月报按媒体记录计）")
    media_reads: int = Field(description="活动记录自填的阅读量之和（月报按媒体记录计）")
    by_kind: dict[str, int]


class ActivityAttendance(SQLModel, table=True):
    """A household identified among an activity's participants (参与者登记): what 人 (distinct people)
    is counted from. An activity's 人次 stays its recorded count; names recorded are at most that."""

    __tablename__ = "activity_attendance"
    activity_id: int = Field(sa_column=Column(BigId, ForeignKey("activity.id"), primary_key=True))
    household_id: int = Field(sa_column=Column(BigId, ForeignKey("household.id"), primary_key=True, index=True))
    recorded_by: int = Field(sa_column=fk("app_user.id", index=False))
    recorded_at: datetime = Field(default_factory=utcnow)


class AttendeesAdd(SQLModel):
    household_ids: list[int] = Field(min_length=1, max_length=500, description="到场住户（本社区）；已登记的不重复计")
    backdate_reason: str | None = Field(default=None, min_length=4, max_length=200,
                                        description="补录原因（居委会）：活动日期早于 3 天前时须填写")


class Attendee(SQLModel):
    household_id: int
    building: str
    unit: str
    door_plate: str
    recorded_at: datetime


class Attendees(SQLModel):
    activity_id: int
    participants: int = Field(description="本场参与人次（记录的人数）")
    named: int = Field(description="已按户登记的参与者")
    unnamed: int = Field(description="未登记的人次 = 参与人次 − 已登记")
    items: list[Attendee]


# --- challenges (打卡挑战) ----------------------------------------------------------------------

class ChallengeBase(SQLModel):
    title: str = Field(min_length=1, max_length=60, description="如 21天减塑打卡")
    description: str = Field(default="", max_length=1000)
    days_required: int = Field(ge=1, le=366, description="连续打卡天数")
    starts_on: Day
    ends_on: Day
    points: int | None = Field(default=None, ge=0, le=100_000, description="完成积分（默认按积分规则）")
    reward: str = Field(default="", max_length=200, description="完成奖励说明")

    @model_validator(mode="after")
    def _period(self):
        if self.ends_on < self.starts_on:
            raise ValueError("ends_on must not be before starts_on")
        return self


class Challenge(ChallengeBase, table=True):
    __tablename__ = "challenge"
    __table_args__ = (UniqueConstraint("community_id", "title", "starts_on"),)
    id: int | None = Field(default=None, sa_column=pk())
    community_id: int = Field(sa_column=fk("community.id"))
    created_by: int = Field(sa_column=fk("app_user.id", index=False))
    created_at: datetime = Field(default_factory=utcnow)


class ChallengeCreate(ChallengeBase):
    pass


class ChallengePublic(ChallengeBase):
    id: int
    community_id: int


class Enrolment(SQLModel, table=True):
    __tablename__ = "challenge_enrolment"
    __table_args__ = (UniqueConstraint("challenge_id", "household_id"),)
    id: int | None = Field(default=None, sa_column=pk())
    challenge_id: int = Field(sa_column=fk("challenge.id", index=False))
    household_id: int = Field(sa_column=fk("household.id"))
    joined_at: datetime = Field(default_factory=utcnow)
    streak: int = 0
    best_streak: int = 0
    days_checked: int = 0
    last_day: date | None = None
    completed_at: datetime | None = None
    points: int = 0


class ChallengeDay(SQLModel, table=True):
    __tablename__ = "challenge_day"
    __table_args__ = (UniqueConstraint("enrolment_id", "day"),)
    id: int | None = Field(default=None, sa_column=pk())
    enrolment_id: int = Field(sa_column=fk("challenge_enrolment.id", index=False))
    day: date
    checked_by: int = Field(sa_column=fk("app_user.id", index=False))
    at: datetime = Field(default_factory=utcnow)


class HouseholdRef(SQLModel):
    household_id: int


class EnrolmentPublic(SQLModel):
    id: int
    challenge_id: int
    household_id: int
    joined_at: datetime
    streak: int = Field(description="当前连续天数")
    best_streak: int
    days_checked: int
    last_day: date | None
    completed_at: datetime | None
    points: int
    checked_today: bool = False


class ChallengeStats(SQLModel):
    enrolled: int
    active: int = Field(description="连续打卡未中断的户数")
    completed: int
