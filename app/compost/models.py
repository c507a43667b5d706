"""Compost sites (堆肥点), bins (堆肥箱), drops, keeper readings, harvests and the claims they create.

A bin's life: accepting → curing (closed; expected ready date from its method's curing time) →
ready → harvested (opened, 开箱); then it may be reopened for a new cycle. Drops belong to a cycle,
and a harvest shares its compost among the households that fed that cycle, as claims collected once.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import AwareDatetime
from sqlalchemy import Boolean, Column, String, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from app.core.db import utcnow
from app.kit.columns import fk, pk


class CompostMethod(StrEnum):
    box = "box"  # 堆肥箱
    worm = "worm"  # 蚯蚓堆肥
    leaf = "leaf"  # 落叶堆肥
    enzyme = "enzyme"  # 酵素


# Days from closing a bin to expected readiness, by method ("about 20 days in summer", 000 L703).
CURING_DAYS = {"box": 20, "worm": 45, "leaf": 60, "enzyme": 90}


class BinState(StrEnum):
    accepting = "accepting"
    curing = "curing"
    ready = "ready"
    harvested = "harvested"


class WasteKind(StrEnum):
    raw = "raw"  # 生厨余
    cooked = "cooked"  # 熟厨余


class Smell(StrEnum):
    none = "none"
    earthy = "earthy"
    sour = "sour"
    ammonia = "ammonia"
    rotten = "rotten"


# --- sites -------------------------------------------------------------------------------------

class CompostSiteBase(SQLModel):
    name: str = Field(min_length=1, max_length=60, description="堆肥点名称")
    address: str = Field(default="", max_length=100)


class CompostSite(CompostSiteBase, table=True):
    __tablename__ = "compost_site"
    __table_args__ = (UniqueConstraint("community_id", "name"),)
    id: int | None = Field(default=None, sa_column=pk())
    community_id: int = Field(sa_column=fk("community.id", index=False))
    created_at: datetime = Field(default_factory=utcnow)


class CompostSiteCreate(CompostSiteBase):
    pass


class CompostSitePublic(CompostSiteBase):
    id: int
    community_id: int


# --- bins --------------------------------------------------------------------------------------

class CompostBinBase(SQLModel):
    name: str = Field(min_length=1, max_length=30, description="如 1号箱")
    method: CompostMethod
    capacity_l: int = Field(ge=1, le=100_000, description="容量（升）")
    curing_days: int | None = Field(default=None, ge=1, le=365, description="腐熟天数（默认按方式）")


class CompostBin(CompostBinBase, table=True):
    __tablename__ = "compost_bin"
    __table_args__ = (UniqueConstraint("site_id", "name"),)
    id: int | None = Field(default=None, sa_column=pk())
    community_id: int = Field(sa_column=fk("community.id"))
    site_id: int = Field(sa_column=fk("compost_site.id", index=False))
    method: str = Field(sa_column=Column(String(10), nullable=False))
    state: str = Field(default=BinState.accepting.value, sa_column=Column(String(12), nullable=False))
    cycle: int = 1
    closed_at: datetime | None = None
    ready_on: date | None = None
    opened_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class CompostBinCreate(CompostBinBase):
    pass


class CompostBinPublic(CompostBinBase):
    id: int
    community_id: int
    site_id: int
    method: CompostMethod
    state: BinState
    cycle: int
    closed_at: datetime | None
    ready_on: date | None = Field(description="预计腐熟日期（社区当地日期）")
    opened_at: datetime | None
    fed_g: int = Field(default=0, description="本轮投放总重量（克）")


# --- drops -------------------------------------------------------------------------------------

class CompostDrop(SQLModel, table=True):
    __tablename__ = "compost_drop"
    __table_args__ = (UniqueConstraint("community_id", "client_id"),)
    id: int | None = Field(default=None, sa_column=pk())
    community_id: int = Field(sa_column=fk("community.id", index=False))
    client_id: str = Field(sa_column=Column(String(64), nullable=False))
    bin_id: int = Field(sa_column=fk("compost_bin.id"))
    cycle: int
    household_id: int = Field(sa_column=fk("household.id"))
    weight_g: int
    kind: str = Field(sa_column=Column(String(8), nullable=False))
    points: int = 0
    dropped_at: datetime
    recorded_at: datetime = Field(default_factory=utcnow)
    recorded_by: int = Field(sa_column=fk("app_user.id", index=False))
    typed: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default=text("false")))  # hand-entry code typed, not scanned


class CompostDropCreate(SQLModel):
    client_id: str = Field(min_length=8, max_length=64, schema_extra={"pattern": r"^[A-Za-z0-9_.:-]+$"}, description="重发时不变的唯一编号")
    payload: str = Field(min_length=1, max_length=200, description="门牌二维码内容，或手工输入码")
    weight_g: int = Field(ge=1, le=100_000, description="重量（克）")
    kind: WasteKind = WasteKind.raw
    dropped_at: AwareDatetime | None = Field(default=None, description="投放时间（默认当前时间）")


class CompostDropPublic(SQLModel):
    id: int
    community_id: int
    client_id: str
    bin_id: int
    cycle: int
    household_id: int
    weight_g: int
    kind: WasteKind
    points: int
    dropped_at: datetime
    recorded_by: int
    typed: bool = Field(default=False, description="手工输入码录入（非扫码）")
    reversed: bool = False


# --- readings ----------------------------------------------------------------------------------

class CompostReadingBase(SQLModel):
    temperature_c: float | None = Field(default=None, ge=-30, le=95, description="温度（℃）")
    moisture_pct: int | None = Field(default=None, ge=0, le=100, description="湿度（%）")
    smell: Smell | None = None
    notes: str = Field(default="", max_length=500)


class CompostReading(CompostReadingBase, table=True):
    __tablename__ = "compost_reading"
    __table_args__ = (UniqueConstraint("bin_id", "client_id"),)
    id: int | None = Field(default=None, sa_column=pk())
    client_id: str = Field(sa_column=Column(String(64), nullable=False))
    bin_id: int = Field(sa_column=fk("compost_bin.id"))
    smell: str | None = Field(default=None, sa_column=Column(String(10), nullable=True))
    cycle: int
    taken_at: datetime = Field(default_factory=utcnow)
    recorded_by: int = Field(sa_column=fk("app_user.id", index=False))


class CompostReadingCreate(CompostReadingBase):
    client_id: str = Field(min_length=8, max_length=64, schema_extra={"pattern": r"^[A-Za-z0-9_.:-]+$"}, description="重发时不变的唯一编号")


class CompostReadingPublic(CompostReadingBase):
    id: int
    bin_id: int
    cycle: int
    taken_at: datetime
    recorded_by: int


# --- harvests and claims (领取肥料) -------------------------------------------------------------

class CompostHarvest(SQLModel, table=True):
    __tablename__ = "compost_harvest"
    __table_args__ = (UniqueConstraint("bin_id", "cycle"),)
    id: int | None = Field(default=None, sa_column=pk())
    community_id: int = Field(sa_column=fk("community.id", index=False))
    bin_id: int = Field(sa_column=fk("compost_bin.id", index=False))
    cycle: int
    compost_g: int
    harvested_at: datetime = Field(default_factory=utcnow)
    recorded_by: int = Field(sa_column=fk("app_user.id", index=False))


class HarvestCreate(SQLModel):
    compost_g: int = Field(ge=1, le=10_000_000, description="出肥重量（克）")


class CompostClaim(SQLModel, table=True):
    __tablename__ = "compost_claim"
    __table_args__ = (UniqueConstraint("harvest_id", "household_id"),)
    id: int | None = Field(default=None, sa_column=pk())
    harvest_id: int = Field(sa_column=fk("compost_harvest.id", index=False))
    household_id: int = Field(sa_column=fk("household.id"))
    fed_g: int = Field(description="该户本轮投放的厨余（克）")
    share_g: int = Field(description="可领取的肥料（克）")
    collected_at: datetime | None = None
    collected_by: int | None = Field(default=None, sa_column=fk("app_user.id", nullable=True, index=False))


class CompostClaimPublic(SQLModel):
    id: int
    harvest_id: int
    bin_id: int | None = None
    bin_name: str | None = Field(default=None, description="堆肥箱名称，如 1号箱")
    site_id: int | None = None
    site_name: str | None = Field(default=None, description="领取地点：堆肥点名称")
    site_address: str | None = Field(default=None, description="领取地点：堆肥点位置")
    household_id: int
    fed_g: int
    share_g: int = Field(description="可领取的肥料（克）")
    collected_at: datetime | None
    collected_by: int | None


class HarvestPublic(SQLModel):
    id: int
    bin_id: int
    cycle: int
    compost_g: int
    harvested_at: datetime
    claims: list[CompostClaimPublic]
