"""The sorting guide's tables: a community's own entries (overrides and additions for its bins) and the
searches that found nothing (what residents could not find). The shipped guide itself is data
(app/guide/data/items.csv), not a table."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel
from pydantic import Field as PydanticField
from sqlalchemy import JSON, Column, Integer, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.checkins.models import IncorrectReason, WasteCategory
from app.core.db import utcnow
from app.kit.columns import fk, pk


class GuideOverride(SQLModel, table=True):
    """A community's entry: replaces the shipped entry of the same name, or adds one."""

    __tablename__ = "guide_override"
    __table_args__ = (UniqueConstraint("community_id", "name"),)
    id: int | None = Field(default=None, sa_column=pk())
    community_id: int = Field(sa_column=fk("community.id", index=False))
    name: str = Field(sa_column=Column(String(40), nullable=False))
    group: str = Field(sa_column=Column("grp", String(12), nullable=False))
    synonyms: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    instruction: str = Field(sa_column=Column(String(200), nullable=False))
    updated_at: datetime = Field(default_factory=utcnow)
    updated_by: int = Field(sa_column=fk("app_user.id", index=False))


class GuideMiss(SQLModel, table=True):
    """A search that found nothing in a community, counted by its (normalised) text."""

    __tablename__ = "guide_miss"
    __table_args__ = (UniqueConstraint("community_id", "query"),)
    id: int | None = Field(default=None, sa_column=pk())
    community_id: int = Field(sa_column=fk("community.id", index=False))
    query: str = Field(sa_column=Column(String(40), nullable=False))
    count: int = Field(sa_column=Column(Integer, nullable=False))
    first_at: datetime
    last_at: datetime


# --- API shapes -------------------------------------------------------------------------------

class GuideEntry(BaseModel):
    name: str
    group: WasteCategory = PydanticField(description="GB/T 19095-2019 的类别：recyclable 可回收物、hazardous 有害垃圾、kitchen 厨余垃圾、other 其他垃圾")
    group_name: str = PydanticField(description="国家标准的名称，如 厨余垃圾")
    local_name: str = PydanticField(description="本社区所在城市的叫法，如上海的 湿垃圾、干垃圾")
    names_by_city: dict[str, str] = PydanticField(description="各城市的叫法")
    synonyms: list[str]
    instruction: str = PydanticField(description="怎么投放")
    source: str = PydanticField(description="guide：全国指南；community：本社区的规定")


class GuideSearchResult(BaseModel):
    query: str
    items: list[GuideEntry]
    found: bool


class GuideEntryIn(BaseModel):
    group: WasteCategory
    synonyms: list[Annotated[str, PydanticField(min_length=1, max_length=40)]] = PydanticField(default_factory=list, max_length=20)
    instruction: str = PydanticField(min_length=1, max_length=200)


class GuideMissPublic(BaseModel):
    query: str
    count: int
    first_at: datetime
    last_at: datetime


class ReasonGuide(BaseModel):
    reason: IncorrectReason
    label: str = PydanticField(description="错投原因")
    tip: str = PydanticField(description="给居民的提示")
    items: list[GuideEntry] = PydanticField(description="与该原因相关的指南条目")
    recent_count: int = PydanticField(description="近30天本社区记录该原因的次数")
