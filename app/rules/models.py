"""Versioned points rules per community, the per-household daily cap counter, and act reversals.

A rule version applies from `effective_from` until the next version starts; a new version never
changes what was already credited (the ledger entries of past acts stay as they are).
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import model_validator
from sqlalchemy import Column, Date, PrimaryKeyConstraint, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.core.db import utcnow
from app.kit.columns import BigId, fk, pk

# Used when a community has not configured its rules yet.
DEFAULTS = {
    "checkin_correct": 10,
    "compost_per_kg": 10,
    "compost_per_drop": 0,
    "volunteer_per_hour": 0,
    "challenge_complete": 50,
    "daily_cap": None,
}


class PointsRuleBase(SQLModel):
    checkin_correct: int = Field(default=10, ge=0, le=10_000, description="桶边督导分类正确一次的积分")
    compost_per_kg: int = Field(default=10, ge=0, le=10_000, description="堆肥投放每公斤积分")
    compost_per_drop: int = Field(default=0, ge=0, le=10_000, description="堆肥投放每次积分")
    volunteer_per_hour: int = Field(default=0, ge=0, le=10_000, description="志愿服务每小时积分（0 表示不计积分）")
    challenge_complete: int = Field(default=50, ge=0, le=100_000, description="完成打卡挑战的积分")
    daily_cap: int | None = Field(default=None, ge=1, le=1_000_000, description="每户每天最多获得的积分（空表示不封顶）")


class PointsRule(PointsRuleBase, table=True):
    """One version of a community's points rules."""

    __tablename__ = "points_rule"
    __table_args__ = (UniqueConstraint("community_id", "effective_from"),)
    id: int | None = Field(default=None, sa_column=pk())
    community_id: int = Field(sa_column=fk("community.id", index=False))
    effective_from: datetime
    created_by: int | None = Field(default=None, sa_column=fk("app_user.id", nullable=True, index=False))
    created_at: datetime = Field(default_factory=utcnow)
    # Set on a version that starts in the past (补录), entered on the committee's authority.
    backdate_reason: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))


class PointsRuleCreate(PointsRuleBase):
    effective_from: datetime | None = Field(default=None, description="生效时间（默认立即生效；早于当前时间须居委会填写补录原因）")
    backdate_reason: str | None = Field(
        default=None, min_length=4, max_length=200,
        description="补录原因：录入过去某段时间实行的规则（仅居委会），只用于补录的过去记录，不改变已记入的积分",
    )


class PointsRulePublic(PointsRuleBase):
    id: int | None = None
    community_id: int
    effective_from: datetime | None = None
    backdated: bool = Field(default=False, description="补录的历史规则版本")
    backdate_reason: str | None = None

    @model_validator(mode="after")
    def _backdated(self):
        self.backdated = self.backdate_reason is not None
        return self


class HouseholdDayPoints(SQLModel, table=True):
    """Points granted to a household's acts on one local day, net of reversals: the daily cap is
    applied against it, so a reversed act frees its points for later acts that day."""

    __tablename__ = "household_day_points"
    __table_args__ = (PrimaryKeyConstraint("household_id", "day"),)
    household_id: int = Field(sa_column=Column(BigId, nullable=False))
    day: date = Field(sa_column=Column(Date, nullable=False))
    granted: int = 0
    # What the latest upsert added (so one statement tells the caller its grant); not a total.
    last_grant: int = 0


class ActReversal(SQLModel, table=True):
    """A correction of a recorded act (check-in, compost drop, weigh-in): the act stays, its points are reversed."""

    __tablename__ = "act_reversal"
    __table_args__ = (UniqueConstraint("act", "act_id"),)
    id: int | None = Field(default=None, sa_column=pk())
    community_id: int = Field(sa_column=fk("community.id", index=False))
    act: str = Field(sa_column=Column(String(20), nullable=False))
    act_id: int = Field(sa_column=Column(BigId, nullable=False))
    reason: str = Field(max_length=200)
    entry_id: int | None = Field(default=None, sa_column=Column(BigId, nullable=True))
    actor_user_id: int | None = Field(default=None, sa_column=fk("app_user.id", nullable=True, index=False))
    at: datetime = Field(default_factory=utcnow)


class ReversalCreate(SQLModel):
    reason: str = Field(min_length=1, max_length=200, description="冲正原因")
