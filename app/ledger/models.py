"""Ledger tables: accounts, journal entries, postings, and each community's expiry policy.

Sign convention: a posting's amount is what the account gains. A household credit is
(+N household, −N issued); a redemption (−N household, +N redeemed). Every entry sums to zero.
Balances live on rows only for household accounts (to refuse overdrafts in the database);
system balances are derived from postings. A household row also carries `held`: its points reserved
by open redemptions (the household's share of the `held` account, like a card hold or a pending
transfer), so the database refuses settling or releasing more than is held.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from sqlalchemy import BigInteger, CheckConstraint, Column, ForeignKey, Index, String, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from app.core.db import utcnow
from app.kit.columns import BigId, fk, pk


class SystemAccount(StrEnum):
    issued = "issued"  # points issued for acts (checks, compost, recycling, volunteering, challenges)
    redeemed = "redeemed"  # points spent on rewards
    held = "held"  # points reserved by an open redemption
    expired = "expired"
    vouchers = "vouchers"  # 积分支票 outstanding (a liability)
    adjustments = "adjustments"


HOUSEHOLD = "household"


class Source(StrEnum):
    checkin = "checkin"
    compost = "compost"
    recycling = "recycling"
    volunteer = "volunteer"
    challenge = "challenge"
    voucher = "voucher"
    adjustment = "adjustment"
    redemption = "redemption"
    expiry = "expiry"
    correction = "correction"


class LedgerAccount(SQLModel, table=True):
    __tablename__ = "ledger_account"
    __table_args__ = (
        CheckConstraint("household_id IS NULL OR balance >= 0", name="ck_ledger_account_household_not_negative"),
        CheckConstraint("held >= 0", name="ck_ledger_account_held_not_negative"),
        Index(
            "ux_ledger_account_system",
            "community_id",
            "kind",
            unique=True,
            postgresql_where=text("household_id IS NULL"),
        ),
    )
    id: int | None = Field(default=None, sa_column=pk())
    community_id: int = Field(sa_column=fk("community.id"))
    household_id: int | None = Field(
        default=None, sa_column=Column(BigId, ForeignKey("household.id"), nullable=True, unique=True)
    )
    kind: str = Field(sa_column=Column(String(20), nullable=False))
    # Household accounts: the points the household can spend (held points excluded).
    balance: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    # Household accounts: points held by open reservations, redeemed only when handed over.
    held: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    # Number of postings applied: gives each household posting its place in the passbook.
    version: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))


class JournalEntry(SQLModel, table=True):
    __tablename__ = "journal_entry"
    __table_args__ = (
        Index("ix_journal_entry_household_occurred", "household_id", "occurred_at"),
        # A community's entries in time order: a period's entries are one range per community (point
        # totals: 880,000 entries of a month read from 8.3 M instead of every entry of the communities).
        # Serves lookups by community alone as the plain index on community_id did (migration 0010).
        Index("ix_journal_entry_community_occurred", "community_id", "occurred_at"),
    )
    id: int | None = Field(default=None, sa_column=pk())
    community_id: int = Field(sa_column=fk("community.id", index=False))
    household_id: int | None = Field(default=None, sa_column=Column(BigId, ForeignKey("household.id"), nullable=True))
    source: str = Field(sa_column=Column(String(20), nullable=False))
    idempotency_key: str = Field(sa_column=Column(String(160), nullable=False, unique=True))
    memo: str = Field(default="", sa_column=Column(String(200), nullable=False, server_default=""))
    occurred_at: datetime
    posted_at: datetime = Field(default_factory=utcnow)
    quantity_g: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    category: str | None = Field(default=None, sa_column=Column(String(30), nullable=True))
    # A correction points at the entry it reverses; unique, so nothing is reversed twice.
    reverses_entry_id: int | None = Field(
        default=None, sa_column=Column(BigId, ForeignKey("journal_entry.id"), nullable=True, unique=True)
    )
    actor_user_id: int | None = Field(default=None, sa_column=Column(BigId, ForeignKey("app_user.id"), nullable=True))
    reason: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))


class Posting(SQLModel, table=True):
    __tablename__ = "posting"
    __table_args__ = (
        UniqueConstraint("account_id", "seq", name="ux_posting_account_seq"),
        # An entry's postings with their account and amount in the index itself: reports that join a
        # period's entries to their postings (point totals: 360,000 lookups for a month of a street)
        # read the index alone, not the table as well (migration 0009).
        Index("ix_posting_entry_id", "entry_id", postgresql_include=["account_id", "amount"]),
    )
    id: int | None = Field(default=None, sa_column=pk())
    entry_id: int = Field(sa_column=fk("journal_entry.id", index=False))
    account_id: int = Field(sa_column=Column(BigId, ForeignKey("ledger_account.id"), nullable=False))
    amount: int = Field(sa_column=Column(BigInteger, nullable=False))
    # Household postings only: position in the passbook and the running balance after it.
    seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    balance_after: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class ExpiryMode(StrEnum):
    never = "never"
    year_end = "year_end"  # all points earned in a year expire on a set date of the next year (年底清零)
    rolling = "rolling"  # points expire N months after they were earned


class LedgerPolicy(SQLModel, table=True):
    __tablename__ = "ledger_policy"
    community_id: int = Field(sa_column=Column(BigId, ForeignKey("community.id"), primary_key=True))
    expiry_mode: str = Field(default=ExpiryMode.never, sa_column=Column(String(12), nullable=False))
    expiry_month: int = 3
    expiry_day: int = 31
    expiry_months: int = 12
    updated_at: datetime = Field(default_factory=utcnow)


# --- API shapes -------------------------------------------------------------------------------

class PolicyPublic(SQLModel):
    expiry_mode: ExpiryMode = ExpiryMode.never
    expiry_month: int = Field(default=3, ge=1, le=12, description="year_end: month of the following year")
    expiry_day: int = Field(default=31, ge=1, le=31, description="year_end: day of that month")
    expiry_months: int = Field(default=12, ge=1, le=120, description="rolling: months after earning")


class StatementLine(SQLModel):
    entry_id: int
    occurred_at: datetime
    date: str = Field(description="本地日期 YYYY-MM-DD")
    source: str
    memo: str
    points_in: int
    points_out: int
    balance_after: int
    quantity_g: int | None = None
    category: str | None = None
    reverses_entry_id: int | None = None


class StatementPage(SQLModel):
    household_id: int
    balance: int
    items: list[StatementLine]
    next_cursor: str | None = None


class Passbook(SQLModel):
    household_id: int
    door_plate: str
    building_name: str | None = None
    balance: int = Field(description="可用积分（不含预约冻结的积分；单位见 unit）")
    held_points: int = Field(default=0, description="预约冻结、尚未兑付的积分（兑付时才算兑换消耗）")
    expiring_points: int = Field(description="未来30天内将过期的积分")
    expiring_on: datetime | None = None
    unit: Literal["积分"] = Field(default="积分", description="积分的单位：所有积分数字都以“积分”计")


class StatementTotals(SQLModel):
    household_id: int
    points_in: int
    points_out: int
    points_by_source: dict[str, int]
    grams_by_category: dict[str, int] = Field(description="减量（克），按品类代码：称重、堆肥投放、带重量的正确督导记录；冲正的不计")
    grams_by_group: dict[str, int] = Field(default_factory=dict, description="减量（克），按垃圾类别：kitchen、recyclable、hazardous、other")
    redeemed: int = Field(default=0, description="兑换消耗：本期兑付（交付）的积分")
    expired: int = Field(default=0, description="本期过期清零的积分")
    held: int = Field(default=0, description="期末预约冻结、尚未兑付的积分")
    balance: int = Field(default=0, description="期末可用积分（不含冻结）")


class AdjustmentCreate(SQLModel):
    points: int = Field(ge=-1_000_000, le=1_000_000, description="正数为增加，负数为扣减，不能为0")
    reason: str = Field(min_length=2, max_length=200, description="调整原因（必填）")
    idempotency_key: str = Field(min_length=8, max_length=80)


class ReversalCreate(SQLModel):
    reason: str = Field(min_length=2, max_length=200)
    idempotency_key: str = Field(min_length=8, max_length=80)


class EntryPublic(SQLModel):
    id: int
    community_id: int
    household_id: int | None
    source: str
    memo: str
    occurred_at: datetime
    reverses_entry_id: int | None = None
    balance_after: int | None = None
    replayed: bool = False


class ExpiryRunResult(SQLModel):
    community_id: int
    cutoff: datetime | None
    households_expired: int
    points_expired: int


class VerifyReport(SQLModel):
    accounts_checked: int
    entries_checked: int
    balance_mismatches: list[dict]
    unbalanced_entries: list[int]
    chain_breaks: list[dict]

    @property
    def clean(self) -> bool:
        return not (self.balance_mismatches or self.unbalanced_entries or self.chain_breaks)
