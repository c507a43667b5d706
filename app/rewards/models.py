"""Rewards (积分兑换): the catalogue, redemptions held like a card hold, consent codes and PIN resets.

Stock and per-household period limits are enforced by conditional UPDATEs and CHECK constraints,
so the database refuses an oversell or a second reservation over the limit under concurrency.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import model_validator
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from app.core.db import utcnow
from app.kit.columns import BigId, fk, pk


class RewardKind(StrEnum):
    goods = "goods"  # 实物
    service = "service"  # 服务，如乐修匠上门维修


class LimitPeriod(StrEnum):
    day = "day"
    week = "week"
    month = "month"
    year = "year"
    ever = "ever"  # once per household, whenever


class RedemptionStatus(StrEnum):
    held = "held"  # points and stock reserved, waiting for the exchange point
    fulfilled = "fulfilled"  # handed over; points moved held → redeemed
    cancelled = "cancelled"  # released by the resident or a clerk
    lapsed = "lapsed"  # not collected in time; released by the lapse job


class Consent(StrEnum):
    code = "code"  # a single-use code shown by the resident's mini-program
    pin = "pin"  # the household's PIN, for residents without a phone


# --- catalogue ---------------------------------------------------------------------------------

class RewardItemBase(SQLModel):
    kind: RewardKind = Field(default=RewardKind.goods, sa_column=Column(String(10), nullable=False))
    name: str = Field(min_length=1, max_length=60, description="名称，如 环保袋、乐修匠上门维修")
    description: str = Field(default="", max_length=500)
    price_points: int = Field(ge=1, le=1_000_000, description="兑换所需积分")
    limit_per_household: int | None = Field(default=None, ge=1, le=1000, description="每户每周期限兑数量，空为不限")
    limit_period: LimitPeriod = Field(default=LimitPeriod.month, sa_column=Column(String(10), nullable=False))
    available_from: datetime | None = Field(default=None, description="开始兑换时间，空为立即")
    available_until: datetime | None = Field(default=None, description="截止兑换时间，空为长期")
    picture_url: str | None = Field(default=None, max_length=500, description="图片地址")
    hold_hours: int = Field(default=72, ge=1, le=24 * 60, description="预约后保留时长（小时），过时自动释放")


class RewardItem(RewardItemBase, table=True):
    __tablename__ = "reward_item"
    __table_args__ = (
        CheckConstraint("stock IS NULL OR stock >= 0", name="ck_reward_item_stock_not_negative"),
        CheckConstraint("price_points > 0", name="ck_reward_item_price_positive"),
        Index("ix_reward_item_community_active", "community_id", "active"),
    )
    id: int | None = Field(default=None, sa_column=pk())
    community_id: int = Field(sa_column=fk("community.id", index=False))
    # Units available to reserve now; NULL means unlimited (services).
    stock: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class RewardItemCreate(RewardItemBase):
    stock: int | None = Field(default=None, ge=0, le=1_000_000, description="库存，空为不限（服务类）")

    @model_validator(mode="after")
    def _dates(self):
        if self.available_from and self.available_until and self.available_until <= self.available_from:
            raise ValueError("available_until must be after available_from")
        return self


class RewardItemUpdate(SQLModel):
    name: str | None = Field(default=None, min_length=1, max_length=60)
    description: str | None = Field(default=None, max_length=500)
    price_points: int | None = Field(default=None, ge=1, le=1_000_000)
    stock: int | None = Field(default=None, ge=0, le=1_000_000, description="设置当前可兑库存；unlimited_stock 为真时改为不限")
    unlimited_stock: bool | None = None
    limit_per_household: int | None = Field(default=None, ge=1, le=1000)
    no_limit: bool | None = Field(default=None, description="为真时取消每户限兑")
    limit_period: LimitPeriod | None = None
    available_from: datetime | None = None
    available_until: datetime | None = None
    picture_url: str | None = Field(default=None, max_length=500)
    hold_hours: int | None = Field(default=None, ge=1, le=24 * 60)
    active: bool | None = None


class RewardItemPublic(RewardItemBase):
    id: int
    community_id: int
    stock: int | None
    active: bool
    available_now: bool = False


# --- redemptions -------------------------------------------------------------------------------

class Redemption(SQLModel, table=True):
    """One reservation of an item by a household (兑换预约), and what became of it."""

    __tablename__ = "redemption"
    __table_args__ = (
        UniqueConstraint("household_id", "idempotency_key", name="ux_redemption_household_key"),
        CheckConstraint("quantity > 0", name="ck_redemption_quantity_positive"),
        Index("ix_redemption_status_expires", "status", "expires_at"),
        Index("ix_redemption_community_status", "community_id", "status"),
    )
    id: int | None = Field(default=None, sa_column=pk())
    community_id: int = Field(sa_column=fk("community.id", index=False))
    household_id: int = Field(sa_column=fk("household.id"))
    item_id: int = Field(sa_column=fk("reward_item.id"))
    item_name: str = Field(max_length=60)
    quantity: int = Field(sa_column=Column(Integer, nullable=False))
    points: int = Field(sa_column=Column(BigInteger, nullable=False))
    status: str = Field(default=RedemptionStatus.held, sa_column=Column(String(12), nullable=False))
    idempotency_key: str = Field(sa_column=Column(String(80), nullable=False))
    period_key: str | None = Field(default=None, sa_column=Column(String(12), nullable=True))
    hold_entry_id: int | None = Field(default=None, sa_column=Column(BigId, ForeignKey("journal_entry.id"), nullable=True))
    settle_entry_id: int | None = Field(default=None, sa_column=Column(BigId, ForeignKey("journal_entry.id"), nullable=True))
    reserved_by_user_id: int | None = Field(default=None, sa_column=Column(BigId, ForeignKey("app_user.id"), nullable=True))
    resolved_by_user_id: int | None = Field(default=None, sa_column=Column(BigId, ForeignKey("app_user.id"), nullable=True))
    consent: str | None = Field(default=None, sa_column=Column(String(8), nullable=True))
    reason: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    resolved_at: datetime | None = None


class RedemptionUsage(SQLModel, table=True):
    """How many units of an item a household holds or has taken in one period: the limit counter."""

    __tablename__ = "redemption_usage"
    __table_args__ = (CheckConstraint("used >= 0", name="ck_redemption_usage_not_negative"),)
    household_id: int = Field(sa_column=Column(BigId, ForeignKey("household.id"), primary_key=True))
    item_id: int = Field(sa_column=Column(BigId, ForeignKey("reward_item.id"), primary_key=True))
    period_key: str = Field(sa_column=Column(String(12), primary_key=True))
    used: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))


class ConsentUse(SQLModel, table=True):
    """Nonces of consent codes already used: the primary key makes each code single-use."""

    __tablename__ = "consent_use"
    nonce: str = Field(sa_column=Column(String(32), primary_key=True))
    household_id: int = Field(sa_column=fk("household.id", index=False))
    used_at: datetime = Field(default_factory=utcnow, index=True)


class PinResetStatus(StrEnum):
    pending = "pending"  # waiting for the resident's confirmation
    confirmed = "confirmed"  # the PIN is the household's now
    superseded = "superseded"  # a later reset, or the resident's own PIN, came first
    expired = "expired"  # not confirmed in time (shown; stored as pending)


class PinResetConfirmation(StrEnum):
    code = "code"  # the resident's consent code, scanned with the reset
    staff = "staff"  # a second staff member, in the resident's presence


class PinReset(SQLModel, table=True):
    """A PIN a staff member set for a household (密码重置): it becomes the household's PIN only once
    the resident confirms, and its requester may never spend with it."""

    __tablename__ = "pin_reset"
    __table_args__ = (UniqueConstraint("household_id", "idempotency_key", name="ux_pin_reset_household_key"),)
    id: int | None = Field(default=None, sa_column=pk())
    community_id: int = Field(sa_column=fk("community.id", index=False))
    household_id: int = Field(sa_column=fk("household.id", index=False))
    idempotency_key: str = Field(sa_column=Column(String(80), nullable=False))
    # The new PIN's argon2 hash while pending; emptied once confirmed (the household has it) or superseded.
    pin_hash: str = Field(sa_column=Column(String(200), nullable=False))
    status: str = Field(default=PinResetStatus.pending, sa_column=Column(String(12), nullable=False))
    requested_by_user_id: int = Field(sa_column=Column(BigId, ForeignKey("app_user.id"), nullable=False))
    requested_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    confirmed_by_user_id: int | None = Field(default=None, sa_column=Column(BigId, ForeignKey("app_user.id"), nullable=True))
    confirmed_with: str | None = Field(default=None, sa_column=Column(String(8), nullable=True))
    confirmed_at: datetime | None = None


# --- API shapes -------------------------------------------------------------------------------

class ReserveRequest(SQLModel):
    item_id: int
    quantity: int = Field(default=1, ge=1, le=100)
    idempotency_key: str = Field(min_length=8, max_length=80, description="客户端生成，重试时保持不变")


class ConsentProof(SQLModel):
    """The resident's consent: the code their mini-program shows, or the household PIN."""

    consent_code: str | None = Field(default=None, max_length=200, description="居民小程序出示的一次性授权码")
    pin: str | None = Field(default=None, min_length=4, max_length=12, description="住户兑换密码（无手机居民；新密码为6位，旧的4–12位密码更改前仍有效）")


class FulfilRequest(ConsentProof):
    pass


class CancelRequest(SQLModel):
    reason: str | None = Field(default=None, max_length=200)


class CounterLine(SQLModel):
    item_id: int
    quantity: int = Field(default=1, ge=1, le=100)


class CounterRequest(ConsentProof):
    household_id: int | None = Field(default=None, description="住户；使用授权码时可省略（码内含住户）")
    payload: str | None = Field(default=None, min_length=1, max_length=200, description="或扫描门牌二维码 / 输入手工输入码指明住户（仍须授权码或兑换密码）")
    items: list[CounterLine] = Field(min_length=1, max_length=20)
    idempotency_key: str = Field(min_length=8, max_length=70)


class RedemptionPublic(SQLModel):
    id: int
    community_id: int
    household_id: int
    item_id: int
    item_name: str
    quantity: int
    points: int
    status: RedemptionStatus
    created_at: datetime
    expires_at: datetime
    resolved_at: datetime | None = None
    consent: str | None = None
    reason: str | None = None
    balance_after: int | None = Field(default=None, description="预约后住户积分余额")
    replayed: bool = False


class CounterResult(SQLModel):
    household_id: int
    points: int
    redemptions: list[RedemptionPublic]
    replayed: bool = False


class ConsentCode(SQLModel):
    code: str = Field(description="展示为二维码，兑换员扫码；60秒内有效，仅可使用一次")
    expires_at: datetime


class PinSet(SQLModel):
    pin: str = Field(min_length=1, max_length=12, description="6位数字（已设置的4–12位旧密码在更改前仍可使用）")


class PinResetRequest(PinSet):
    """A staff member's reset of the household PIN, typed in with the resident."""

    consent_code: str | None = Field(
        default=None, max_length=200, description="居民小程序出示的授权码：有则立即生效；没有则需另一名工作人员当面确认"
    )
    idempotency_key: str = Field(min_length=8, max_length=80, description="客户端生成，重试时保持不变")


class PinResetPublic(SQLModel):
    id: int
    household_id: int
    status: PinResetStatus
    requested_by_user_id: int
    requested_at: datetime
    expires_at: datetime
    confirmed_by_user_id: int | None = None
    confirmed_with: PinResetConfirmation | None = None
    confirmed_at: datetime | None = None
    replayed: bool = False


class LapseRunResult(SQLModel):
    lapsed: int
    points_released: int
