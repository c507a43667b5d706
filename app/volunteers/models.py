"""Volunteer teams (志愿者队伍), their members, and shifts (sign-in, sign-out, minutes served).

A volunteer has at most one open shift, enforced by a partial unique index; a shift's minutes are
fixed at sign-out and, where the community's rules give points per hour, credited to the
volunteer's own household through the ledger.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime
from sqlalchemy import Column, Index, PrimaryKeyConstraint, String, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from app.core.db import utcnow
from app.kit.columns import BigId, fk, pk

MAX_SHIFT_MINUTES = 12 * 60  # a forgotten sign-out is not a 3-day shift


class VolunteerTeamBase(SQLModel):
    name: str = Field(min_length=1, max_length=60, description="队伍名称，如 盯桶侠志愿队")
    leader_user_id: int | None = Field(default=None, description="队长")


class VolunteerTeam(VolunteerTeamBase, table=True):
    __tablename__ = "volunteer_team"
    __table_args__ = (UniqueConstraint("community_id", "name"),)
    id: int | None = Field(default=None, sa_column=pk())
    community_id: int = Field(sa_column=fk("community.id", index=False))
    leader_user_id: int | None = Field(default=None, sa_column=fk("app_user.id", nullable=True, index=False))
    created_at: datetime = Field(default_factory=utcnow)


class VolunteerTeamCreate(VolunteerTeamBase):
    pass


class VolunteerTeamPublic(VolunteerTeamBase):
    id: int
    community_id: int
    members: list[int] = []


class TeamMember(SQLModel, table=True):
    __tablename__ = "volunteer_team_member"
    __table_args__ = (PrimaryKeyConstraint("team_id", "user_id"),)
    team_id: int = Field(sa_column=Column(BigId, nullable=False))
    user_id: int = Field(sa_column=fk("app_user.id"))
    joined_at: datetime = Field(default_factory=utcnow)


class TeamMemberAdd(SQLModel):
    user_id: int


class Shift(SQLModel, table=True):
    __tablename__ = "volunteer_shift"
    __table_args__ = (
        UniqueConstraint("community_id", "client_id"),
        Index("ux_volunteer_shift_open", "user_id", unique=True, postgresql_where=text("signed_out_at IS NULL")),
        Index("ix_volunteer_shift_community_in", "community_id", "signed_in_at"),
    )
    id: int | None = Field(default=None, sa_column=pk())
    community_id: int = Field(sa_column=fk("community.id", index=False))
    client_id: str = Field(sa_column=Column(String(64), nullable=False))
    user_id: int = Field(sa_column=fk("app_user.id", index=False))
    team_id: int | None = Field(default=None, sa_column=fk("volunteer_team.id", nullable=True, index=False))
    station_id: int | None = Field(default=None, sa_column=fk("station.id", nullable=True, index=False))
    event_id: int | None = Field(default=None, sa_column=fk("recycling_event.id", nullable=True, index=False))
    signed_in_at: datetime
    signed_out_at: datetime | None = None
    minutes: int | None = None
    points: int = 0
    household_id: int | None = Field(default=None, sa_column=fk("household.id", nullable=True, index=False))


class ShiftStart(SQLModel):
    client_id: str = Field(min_length=8, max_length=64, schema_extra={"pattern": r"^[A-Za-z0-9_.:-]+$"}, description="重发时不变的唯一编号")
    station_id: int | None = Field(default=None, description="值守的投放点")
    event_id: int | None = Field(default=None, description="服务的回收日")
    team_id: int | None = None
    at: AwareDatetime | None = Field(default=None, description="签到时间（默认当前时间）")


class ShiftEnd(SQLModel):
    at: AwareDatetime | None = Field(default=None, description="签退时间（默认当前时间）")


class ShiftPublic(SQLModel):
    id: int
    community_id: int
    user_id: int
    team_id: int | None
    station_id: int | None
    event_id: int | None
    signed_in_at: datetime
    signed_out_at: datetime | None
    minutes: int | None
    points: int


class VolunteerHours(SQLModel):
    user_id: int
    display_name: str
    shifts: int = Field(description="服务人次")
    minutes: int
    hours: float = Field(description="志愿时长（小时）")
