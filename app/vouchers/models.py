"""Points cheques (积分支票): vouchers worth N points, issued with a printed claim code to a resident
who is not registered yet, claimed once into a passbook, expired, or cancelled when the act behind it is corrected. The code is kept only as a keyed
hash; the status column changes by conditional UPDATEs, so a voucher is claimed or expired once.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, Column, ForeignKey, Index, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.core.db import utcnow
from app.kit.columns import BigId, fk, pk


class VoucherStatus(StrEnum):
    outstanding = "outstanding"
    claimed = "claimed"
    expired = "expired"
    cancelled = "cancelled"  # the act that earned it was corrected (a reversed walk-in weigh-in)


class Voucher(SQLModel, table=True):
    __tablename__ = "voucher"
    __table_args__ = (
        UniqueConstraint("community_id", "idempotency_key", name="ux_voucher_community_key"),
        CheckConstraint("points > 0", name="ck_voucher_points_positive"),
        Index("ix_voucher_status_expires", "status", "expires_at"),
    )
    id: int | None = Field(default=None, sa_column=pk())
    community_id: int = Field(sa_column=fk("community.id"))
    points: int = Field(sa_column=Column(BigInteger, nullable=False))
    code_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    code_hint: str = Field(sa_column=Column(String(8), nullable=False))
    status: str = Field(default=VoucherStatus.outstanding, sa_column=Column(String(12), nullable=False))
    memo: str = Field(default="", max_length=100)
    idempotency_key: str = Field(sa_column=Column(String(120), nullable=False))
    issued_by_user_id: int | None = Field(default=None, sa_column=Column(BigId, ForeignKey("app_user.id"), nullable=True))
    issued_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    issue_entry_id: int | None = Field(default=None, sa_column=Column(BigId, ForeignKey("journal_entry.id"), nullable=True))
    settle_entry_id: int | None = Field(default=None, sa_column=Column(BigId, ForeignKey("journal_entry.id"), nullable=True))
    claimed_household_id: int | None = Field(default=None, sa_column=Column(BigId, ForeignKey("household.id"), nullable=True))
    claimed_by_user_id: int | None = Field(default=None, sa_column=Column(BigId, ForeignKey("app_user.id"), nullable=True))
    settled_at: datetime | None = None


# --- API shapes -------------------------------------------------------------------------------

class VoucherCreate(SQLModel):
    points: int = Field(ge=1, le=100_000, description="积分支票面额")
    memo: str = Field(default="", max_length=100, description="备注，如 资源回收日 纸类 4.1kg")
    valid_days: int = Field(default=90, ge=1, le=730, description="有效天数，过期未领取作废")
    idempotency_key: str = Field(min_length=8, max_length=80)


class VoucherPublic(SQLModel):
    id: int
    community_id: int
    points: int
    status: VoucherStatus
    memo: str
    code_hint: str = Field(description="领取码末4位，用于核对")
    issued_at: datetime
    expires_at: datetime
    claimed_household_id: int | None = None
    settled_at: datetime | None = None


class VoucherIssued(VoucherPublic):
    claim_code: str = Field(description="领取码：只在签发时显示一次，打印给居民")
    label_svg: str = Field(description="可打印的小标签（SVG，含二维码与领取码）")
    replayed: bool = False


class VoucherClaim(SQLModel):
    code: str = Field(min_length=8, max_length=40, description="积分支票上的领取码")


class VoucherClaimed(SQLModel):
    voucher_id: int
    household_id: int
    points: int
    balance_after: int | None
    replayed: bool = False


class VoucherExpiryResult(SQLModel):
    expired: int
    points: int
