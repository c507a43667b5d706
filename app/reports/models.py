"""Report settings and records kept for reports: the committee's red/black list thresholds (红黑榜)
and media items (媒体传播: a post, an article, a broadcast and its reads) for the monthly report.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Column, Date, ForeignKey, Index, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.core.db import utcnow
from app.kit.columns import BigId, fk, pk
from app.kit.fields import Day

# Thresholds used until the committee sets its own (正确率 90%, 参与率 60%).
DEFAULT_ACCURACY_PCT = 90
DEFAULT_PARTICIPATION_PCT = 60


# --- red and black list thresholds (红黑榜) ------------------------------------------------------

class RankingSettingsBase(SQLModel):
    accuracy_pct: int = Field(ge=0, le=100, description="红榜正确率门槛（%）：达到或超过进红榜，低于进黑榜")
    participation_pct: int = Field(ge=0, le=100, description="红榜参与率门槛（%）：达到或超过进红榜，低于进黑榜")


class RankingSettings(RankingSettingsBase, table=True):
    __tablename__ = "ranking_settings"
    community_id: int = Field(sa_column=Column(BigId, ForeignKey("community.id"), primary_key=True, autoincrement=False))
    updated_at: datetime = Field(default_factory=utcnow)
    updated_by: int | None = Field(default=None, sa_column=fk("app_user.id", nullable=True, index=False))


class RankingSettingsUpdate(RankingSettingsBase):
    pass


class RankingSettingsPublic(RankingSettingsBase):
    community_id: int
    configured: bool = Field(description="居委会是否已设置；未设置时为默认门槛")
    updated_at: datetime | None = None


# --- media items (媒体传播) ----------------------------------------------------------------------

class MediaItemBase(SQLModel):
    title: str = Field(min_length=1, max_length=120, description="标题")
    channel: str = Field(min_length=1, max_length=40, description="渠道，如 微信公众号、视频号、报纸")
    published_on: Day = Field(description="发布日期")
    reads: int = Field(default=0, ge=0, le=1_000_000_000, description="阅读/点击量")
    url: str = Field(default="", max_length=300)
    organisation_id: int | None = Field(default=None, description="发布的社会组织")
    activity_id: int | None = Field(default=None, description="报道的活动（本社区的活动；月报活动表的媒体列据此计）")


class MediaItem(MediaItemBase, table=True):
    __tablename__ = "media_item"
    __table_args__ = (
        UniqueConstraint("community_id", "client_id"),
        Index("ix_media_item_community_published", "community_id", "published_on"),
    )
    id: int | None = Field(default=None, sa_column=pk())
    client_id: str = Field(sa_column=Column(String(64), nullable=False))
    community_id: int = Field(sa_column=fk("community.id", index=False))
    organisation_id: int | None = Field(default=None, sa_column=fk("organisation.id", nullable=True, index=False))
    activity_id: int | None = Field(default=None, sa_column=fk("activity.id", nullable=True))
    created_by: int = Field(sa_column=fk("app_user.id", index=False))
    created_at: datetime = Field(default_factory=utcnow)


class MediaReading(SQLModel, table=True):
    """Reads of a media item as known at an instant (阅读量登记): appended on creation and on every
    change of reads, never updated, so a month's figure is the last reading before the month's end
    and regenerating a past month's report never changes it."""

    __tablename__ = "media_reading"
    __table_args__ = (Index("ix_media_reading_item_at", "media_item_id", "recorded_at"),)
    id: int | None = Field(default=None, sa_column=pk())
    media_item_id: int = Field(sa_column=fk("media_item.id", index=False))
    reads: int = Field(sa_column=Column(BigInteger, nullable=False))
    recorded_at: datetime = Field(default_factory=utcnow)


class MediaItemCreate(MediaItemBase):
    # `pattern` through schema_extra: SQLModel passes `regex=` to pydantic 2, which ignores it.
    client_id: str = Field(min_length=8, max_length=64, schema_extra={"pattern": r"^[A-Za-z0-9_.:-]+$"},
                           description="重发时不变的唯一编号")


class MediaItemUpdate(SQLModel):
    """Reads keep growing after publication: the committee updates them before the month's report."""

    title: str | None = Field(default=None, min_length=1, max_length=120)
    channel: str | None = Field(default=None, min_length=1, max_length=40)
    published_on: Day | None = None
    reads: int | None = Field(default=None, ge=0, le=1_000_000_000)
    url: str | None = Field(default=None, max_length=300)
    activity_id: int | None = Field(default=None, description="报道的活动（本社区的活动）")


class MediaItemPublic(MediaItemBase):
    id: int
    community_id: int
    created_by: int


class MediaItemRecorded(MediaItemPublic):
    replayed: bool = Field(default=False, description="此前已收到同一编号，返回原记录")


# --- point totals roll-up (积分月汇总) -------------------------------------------------------------
# Sums of every household posting per local month, for the point totals export: a month of a
# 60,000-household street is ~880,000 entries and their postings to read live, ~50,000 rows here.
# Exact by construction (reports.rollup): the roll-up holds the entries with id <= the watermark of its
# time zone, each counted in the month of its effective time (a correction in the month of the entry
# it reverses), and the export adds the entries after the watermark live, whatever time they carry.

def _figure() -> Column:
    return Column(BigInteger, nullable=False, server_default="0")


class PointRollupState(SQLModel, table=True):
    __tablename__ = "point_rollup_state"
    timezone: str = Field(sa_column=Column(String(40), primary_key=True))
    # Every journal entry with id <= watermark is summed in household_month_points for this time zone.
    watermark: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    updated_at: datetime = Field(default_factory=utcnow)


class HouseholdMonthPoints(SQLModel, table=True):
    __tablename__ = "household_month_points"
    # Primary key in this order: an export reads its period's months and those after it (for the
    # opening balances), one range of the key, not every month of every household.
    timezone: str = Field(sa_column=Column(String(40), primary_key=True))
    month: date = Field(sa_column=Column(Date, primary_key=True))  # first local day of the month
    community_id: int = Field(sa_column=Column(BigId, ForeignKey("community.id"), primary_key=True, autoincrement=False))
    household_id: int = Field(sa_column=Column(BigId, ForeignKey("household.id"), primary_key=True, autoincrement=False))
    net: int = Field(default=0, sa_column=_figure())  # every posting of the month: what the balance moved
    checkin: int = Field(default=0, sa_column=_figure())
    compost: int = Field(default=0, sa_column=_figure())
    recycling: int = Field(default=0, sa_column=_figure())
    volunteer: int = Field(default=0, sa_column=_figure())
    challenge: int = Field(default=0, sa_column=_figure())
    voucher: int = Field(default=0, sa_column=_figure())
    adjustment: int = Field(default=0, sa_column=_figure())
    redemption: int = Field(default=0, sa_column=_figure())
    expiry: int = Field(default=0, sa_column=_figure())
    held_net: int = Field(default=0, sa_column=_figure())  # the household's held points moved (every posting of the month)
    held: int = Field(default=0, sa_column=_figure())  # the same, counted in the period's figures
    # No kilograms here: the export reads them from the records (app.reports.measures.waste).
