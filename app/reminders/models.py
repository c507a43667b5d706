"""Subscriptions (how many one-time subscribe messages a resident allowed per template) and the
reminder outbox (one row per reminder and resident, never sent twice).

WeChat's one-time subscribe messages (一次性订阅消息): each time the resident taps 允许 in
wx.requestSubscribeMessage, the app may send them one message with that template. So a
subscription is a count, raised by each acceptance and lowered by each message WeChat accepted.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, Index, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.core.db import utcnow
from app.kit.columns import BigId, fk, pk


class ReminderKind(StrEnum):
    recycling_day = "recycling_day"  # 明天是资源回收日
    compost_ready = "compost_ready"  # 堆肥肥料可以领取


class SubscribeResult(StrEnum):
    """What wx.requestSubscribeMessage answered for one template id."""

    accept = "accept"  # 允许: one message may be sent
    reject = "reject"  # 拒绝
    ban = "ban"  # banned by the platform
    filter = "filter"  # template filtered out by WeChat


class OutboxStatus(StrEnum):
    pending = "pending"  # waiting to be sent (again, after a transient failure)
    sending = "sending"  # claimed by a job run (lease)
    sent = "sent"  # WeChat accepted it
    failed = "failed"  # refused for good (no subscription, bad template data) or out of attempts
    unknown = "unknown"  # may have reached WeChat (lost answer, or the sender died): never resent
    skipped = "skipped"  # no subscription left when its turn came, or no longer due


class MessageSubscription(SQLModel, table=True):
    __tablename__ = "message_subscription"
    __table_args__ = (UniqueConstraint("user_id", "template_id"),)
    id: int | None = Field(default=None, sa_column=pk())
    user_id: int = Field(sa_column=fk("app_user.id", index=False))
    kind: str = Field(sa_column=Column(String(20), nullable=False))
    template_id: str = Field(sa_column=Column(String(64), nullable=False))
    remaining: int = 0
    accepted_total: int = 0
    updated_at: datetime = Field(default_factory=utcnow)


class SubscriptionReport(SQLModel, table=True):
    """One report from the mini-program: a resent report (same client_id) counts once."""

    __tablename__ = "subscription_report"
    __table_args__ = (UniqueConstraint("user_id", "client_id"),)
    id: int | None = Field(default=None, sa_column=pk())
    user_id: int = Field(sa_column=fk("app_user.id", index=False))
    client_id: str = Field(sa_column=Column(String(64), nullable=False))
    accepted: int = 0
    created_at: datetime = Field(default_factory=utcnow)


class ReminderOutbox(SQLModel, table=True):
    __tablename__ = "reminder_outbox"
    __table_args__ = (
        # The reminder's identity: a second job run, or a second instance, cannot add it again.
        UniqueConstraint("kind", "object_id", "user_id"),
        Index("ix_reminder_outbox_due", "status", "next_attempt_at"),
    )
    id: int | None = Field(default=None, sa_column=pk())
    kind: str = Field(sa_column=Column(String(20), nullable=False))
    object_id: int = Field(sa_column=Column(BigId, nullable=False), description="recycling event id or compost claim id")
    user_id: int = Field(sa_column=fk("app_user.id", index=False))
    community_id: int = Field(sa_column=fk("community.id"))
    household_id: int = Field(sa_column=fk("household.id", index=False))
    template_id: str = Field(sa_column=Column(String(64), nullable=False))
    status: str = Field(default=OutboxStatus.pending.value, sa_column=Column(String(10), nullable=False))
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow)
    lease_owner: str | None = Field(default=None, sa_column=Column(String(40), nullable=True))
    lease_until: datetime | None = None
    errcode: int | None = None
    last_error: str = Field(default="", max_length=200)
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None


# --- API shapes -------------------------------------------------------------------------------

class SubscriptionReportIn(SQLModel):
    client_id: str = Field(min_length=8, max_length=64, schema_extra={"pattern": r"^[A-Za-z0-9_.:-]+$"}, description="重发时不变的唯一编号")
    results: dict[str, SubscribeResult] = Field(
        description="wx.requestSubscribeMessage 的返回：模板 id → accept/reject/ban/filter", min_length=1, max_length=10
    )


class SubscriptionPublic(SQLModel):
    kind: ReminderKind
    template_id: str = Field(description="订阅消息模板 id（小程序调用 wx.requestSubscribeMessage 时使用）")
    remaining: int = Field(description="还可以发送的提醒条数（每次同意可发一条）")


class OutboxCount(SQLModel):
    kind: ReminderKind
    status: OutboxStatus
    count: int


class OutboxItem(SQLModel):
    id: int
    kind: ReminderKind
    object_id: int
    household_id: int
    status: OutboxStatus
    attempts: int
    errcode: int | None
    last_error: str
    created_at: datetime
    sent_at: datetime | None


class OutboxPublic(SQLModel):
    counts: list[OutboxCount]
    items: list[OutboxItem]
    next_cursor: str | None = None
