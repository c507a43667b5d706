"""A record of each roster upload: what was in the file, what it did, and the problems found by row."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.core.db import utcnow
from app.kit.columns import fk, pk


class ImportMode(StrEnum):
    dry_run = "dry_run"  # check only: report the problems, store no household
    valid_rows = "valid_rows"  # import the valid rows in one transaction, report the others
    all_or_nothing = "all_or_nothing"  # import only when every row is valid


class RosterImport(SQLModel, table=True):
    __tablename__ = "roster_import"
    __table_args__ = (
        Index("ix_roster_import_community_at", "community_id", "created_at"),
        UniqueConstraint("community_id", "idempotency_key", name="ux_roster_import_community_key"),
    )
    id: int | None = Field(default=None, sa_column=pk())
    community_id: int = Field(sa_column=fk("community.id", index=False))
    actor_user_id: int | None = Field(default=None, sa_column=fk("app_user.id", nullable=True))
    mode: str = Field(sa_column=Column(String(16), nullable=False))
    filename: str = Field(default="", max_length=200)
    file_sha256: str = Field(max_length=64)
    # Uploads only: the client's Idempotency-Key ("key:…"), else the file, mode and options plus the
    # import it followed ("file:…@id"), so a retried upload finds the first report instead of adding one.
    idempotency_key: str | None = Field(default=None, sa_column=Column(String(160), nullable=True))
    rows: int = 0
    valid_rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    buildings_created: int = 0
    # Whether the households were written (false for dry runs and refused all-or-nothing imports).
    applied: bool = False
    errors: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class ProblemPublic(SQLModel):
    row: int
    column: str
    code: str
    message: str


class RosterImportPublic(SQLModel):
    id: int
    community_id: int
    mode: ImportMode
    filename: str
    applied: bool = Field(description="住户数据是否已写入（试运行时为 false）")
    rows: int = Field(description="文件中的数据行数（不含空行）")
    valid_rows: int
    created: int = Field(description="新建的住户数（试运行时为将新建的数目）")
    updated: int
    unchanged: int
    buildings_created: int
    error_count: int
    errors: list[ProblemPublic] = Field(description="前 200 个问题；完整列表请下载错误文件")
    errors_url: str | None = Field(default=None, description="错误文件（CSV，带 BOM，Excel 可直接打开）")
    created_at: datetime
    replayed: bool = Field(default=False, description="重试的上传：返回第一次的报告，未重复导入")


class RosterImportSummary(SQLModel):
    """One line of the import history (the problems themselves: read the import)."""

    id: int
    mode: ImportMode
    filename: str
    actor_user_id: int | None
    applied: bool
    rows: int
    created: int
    updated: int
    unchanged: int
    error_count: int
    created_at: datetime
