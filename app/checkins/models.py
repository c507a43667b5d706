"""Stations (投放点), drop-off windows (定时定点) and check-ins.

A check-in row is kept for every scan a volunteer sends, accepted, duplicate or rejected, so that a
re-sent scan (same client id) gets the same answer and accuracy counts what was really checked.
"""

from __future__ import annotations

from datetime import date, datetime, time
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, model_validator
from pydantic import Field as PydanticField
from sqlalchemy import JSON, Boolean, Column, Index, String, Time, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from app.core.db import utcnow
from app.kit.columns import fk, pk
from app.kit.fields import LocalTime
from app.recycling.groups import WasteGroup

# A bag's category at the bin is one of the four groups of GB/T 19095-2019: one definition.
WasteCategory = WasteGroup


CATEGORY_ZH = {"kitchen": "厨余", "recyclable": "可回收物", "hazardous": "有害垃圾", "other": "其他垃圾"}


class CheckResult(StrEnum):
    correct = "correct"
    incorrect = "incorrect"


class IncorrectReason(StrEnum):
    bag_not_removed = "bag_not_removed"  # 未破袋
    mixed = "mixed"  # 混投
    wrong_bin = "wrong_bin"  # 投错桶
    contaminated = "contaminated"  # 含杂质（塑料、餐巾纸…）
    liquid = "liquid"  # 汤水未沥干
    other = "other"


class ScanStatus(StrEnum):
    accepted = "accepted"
    duplicate = "duplicate"
    rejected = "rejected"


class RejectReason(StrEnum):
    outside_window = "outside_window"
    in_future = "in_future"
    too_old = "too_old"
    forged_code = "forged_code"
    unknown_code = "unknown_code"
    unknown_station = "unknown_station"
    other_community = "other_community"
    moved_out = "moved_out"
    own_household = "own_household"
    client_id_taken = "client_id_taken"
    too_many_attempts = "too_many_attempts"  # a typed code while the volunteer is locked out of typing (not stored)


# --- stations (投放点) ------------------------------------------------------------------------

class StationBase(SQLModel):
    name: str = Field(min_length=1, max_length=60, description="投放点名称，如 3号楼东侧")
    location: str = Field(default="", max_length=100, description="位置说明")
    compound_id: int | None = Field(default=None, description="所在小区")
    active: bool = True


class Station(StationBase, table=True):
    __tablename__ = "station"
    __table_args__ = (UniqueConstraint("community_id", "name"),)
    id: int | None = Field(default=None, sa_column=pk())
    community_id: int = Field(sa_column=fk("community.id", index=False))
    compound_id: int | None = Field(default=None, sa_column=fk("compound.id", nullable=True, index=False))
    created_at: datetime = Field(default_factory=utcnow)


class StationCreate(StationBase):
    pass


class StationUpdate(SQLModel):
    name: str | None = Field(default=None, min_length=1, max_length=60)
    location: str | None = Field(default=None, max_length=100)
    active: bool | None = None


class StationPublic(StationBase):
    id: int
    community_id: int


# --- drop-off windows (定时定点) ---------------------------------------------------------------

class DropWindowBase(SQLModel):
    name: str = Field(min_length=1, max_length=20, description="如 早间、晚间")
    start_time: LocalTime = Field(description="开始时间（社区当地时间）")
    end_time: LocalTime = Field(description="结束时间（社区当地时间，须晚于开始时间）")
    weekdays: str = Field(
        default="1234567", min_length=1, max_length=7, schema_extra={"pattern": r"^[1-7]+$"}, description="适用的星期，1=周一 … 7=周日"
    )
    active: bool = True


class DropWindow(DropWindowBase, table=True):
    __tablename__ = "drop_window"
    __table_args__ = (UniqueConstraint("community_id", "name"),)
    id: int | None = Field(default=None, sa_column=pk())
    community_id: int = Field(sa_column=fk("community.id"))
    # The columns keep their first names; the API's are the house's for a time of day (start_time/end_time).
    start_time: time = Field(sa_column=Column("starts", Time, nullable=False))
    end_time: time = Field(sa_column=Column("ends", Time, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class DropWindowCreate(DropWindowBase):
    @model_validator(mode="after")
    def _order(self):
        if self.end_time <= self.start_time:
            raise ValueError("end_time must be after start_time")
        return self


class DropWindowUpdate(SQLModel):
    name: str | None = Field(default=None, min_length=1, max_length=20)
    start_time: LocalTime | None = None
    end_time: LocalTime | None = None
    weekdays: str | None = Field(default=None, min_length=1, max_length=7, schema_extra={"pattern": r"^[1-7]+$"})
    active: bool | None = None


class DropWindowPublic(DropWindowBase):
    id: int
    community_id: int


# --- check-ins --------------------------------------------------------------------------------

class CheckIn(SQLModel, table=True):
    __tablename__ = "checkin"
    __table_args__ = (
        UniqueConstraint("community_id", "client_id", name="uq_checkin_client"),
        # One check per household per window per day, whatever its grade: the database decides.
        Index(
            "ux_checkin_slot",
            "household_id",
            "window_id",
            "window_date",
            unique=True,
            postgresql_where=text("status = 'accepted'"),
        ),
        Index("ix_checkin_community_scanned", "community_id", "scanned_at"),
        Index("ix_checkin_household_scanned", "household_id", "scanned_at"),
        # The few checks that carry a weight: what the waste measures read (app.reports.measures.waste)
        # without walking every check of a month.
        Index("ix_checkin_weighed", "community_id", "scanned_at", postgresql_where=text("weight_g IS NOT NULL")),
    )
    id: int | None = Field(default=None, sa_column=pk())
    community_id: int = Field(sa_column=fk("community.id", index=False))
    client_id: str = Field(sa_column=Column(String(64), nullable=False))
    household_id: int | None = Field(default=None, sa_column=fk("household.id", nullable=True, index=False))
    station_id: int | None = Field(default=None, sa_column=fk("station.id", nullable=True, index=False))
    window_id: int | None = Field(default=None, sa_column=fk("drop_window.id", nullable=True, index=False))
    window_date: date | None = None
    category: str = Field(sa_column=Column(String(12), nullable=False))
    result: str = Field(sa_column=Column(String(10), nullable=False))
    reasons: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    weight_g: int | None = None
    photo_ref: str | None = Field(default=None, max_length=200)
    status: str = Field(sa_column=Column(String(10), nullable=False))
    reject_reason: str | None = Field(default=None, sa_column=Column(String(20), nullable=True))
    credited: bool = False
    points: int = 0
    scanned_at: datetime
    recorded_at: datetime = Field(default_factory=utcnow)
    recorded_by: int = Field(sa_column=fk("app_user.id", index=False))
    typed: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default=text("false")))  # hand-entry code typed, not scanned


class CheckInAmendment(SQLModel, table=True):
    """A re-grade of a check after the resident re-sorted on the spot (二次分拣): the check keeps its
    place as the window's one check, its grade changes, its points follow (credited or reversed)."""

    __tablename__ = "checkin_amendment"
    id: int | None = Field(default=None, sa_column=pk())
    community_id: int = Field(sa_column=fk("community.id", index=False))
    checkin_id: int = Field(sa_column=fk("checkin.id"))
    from_result: str = Field(sa_column=Column(String(10), nullable=False))
    to_result: str = Field(sa_column=Column(String(10), nullable=False))
    reasons: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    points: int = Field(default=0, description="积分变动（正为补记，负为冲回）")
    credit_key: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    amended_by: int = Field(sa_column=fk("app_user.id", index=False))
    amended_at: datetime = Field(default_factory=utcnow)


class Grade(BaseModel):
    """A check's grade: an incorrect one says why, a correct one has no reasons."""

    result: CheckResult
    reasons: list[IncorrectReason] = PydanticField(default_factory=list, max_length=6, description="分类不正确的原因")

    @model_validator(mode="after")
    def _reasons_match_result(self):
        if self.result == CheckResult.incorrect and not self.reasons:
            raise ValueError("an incorrect check needs at least one reason")
        if self.result == CheckResult.correct and self.reasons:
            raise ValueError("a correct check has no reasons")
        return self


class AmendmentIn(Grade):
    """A re-grade of a check (二次分拣)."""


# The per-scan schemas of an upload of up to 1,000 scans are plain pydantic models: pydantic-core
# builds them without a call back into Python per scan (SQLModel's own __init__ costs that call).

class ScanIn(Grade):
    client_id: str = PydanticField(
        min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$", description="小程序生成的唯一编号（重发时不变）"
    )
    payload: str = PydanticField(min_length=1, max_length=200, description="门牌二维码内容，或二维码下方印的手工输入码（大小写、空格、连字符均可）")
    station_id: int
    category: WasteCategory = WasteCategory.kitchen
    weight_g: int | None = PydanticField(default=None, ge=1, le=200_000, description="重量（克）")
    photo_ref: str | None = PydanticField(default=None, max_length=200, description="照片引用")
    scanned_at: AwareDatetime | None = PydanticField(default=None, description="扫码时间（离线上传时必填，须带时区）")


class BatchScanIn(ScanIn):
    scanned_at: AwareDatetime = PydanticField(description="扫码时间（须带时区）")


class ScanBatch(BaseModel):
    scans: list[BatchScanIn] = PydanticField(min_length=1, max_length=1000)


class ScanResult(BaseModel):
    client_id: str
    status: ScanStatus
    reason: RejectReason | None = None
    checkin_id: int | None = None
    household_id: int | None = None
    points: int = 0
    replayed: bool = PydanticField(default=False, description="此前已收到同一编号，返回原结果")
    duplicate_of: int | None = PydanticField(default=None, description="重复扫码时：本时段首次检查的记录编号")
    first_result: CheckResult | None = PydanticField(default=None, description="重复扫码时：本时段首次检查的分类结果")


class BatchResult(BaseModel):
    accepted: int
    duplicate: int
    rejected: int
    results: list[ScanResult]


class CheckInPublic(SQLModel):
    id: int
    community_id: int
    client_id: str
    household_id: int | None
    station_id: int | None
    window_id: int | None
    window_date: date | None
    category: str
    result: str
    reasons: list[str]
    weight_g: int | None
    photo_ref: str | None
    status: str
    reject_reason: str | None
    credited: bool
    points: int
    scanned_at: datetime
    recorded_at: datetime
    recorded_by: int
    typed: bool = Field(default=False, description="手工输入码录入（非扫码）")
    reversed: bool = False


class CheckInStats(SQLModel):
    registered_households: int
    participating_households: int = Field(description="期间内至少有一次有效督导记录的户数")
    participation_rate: float
    checks: int = Field(description="检查次数（不含重复和无效扫码）")
    correct: int
    accuracy: float = Field(description="分类正确率")
