"""Audit log rows. Append-only."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from app.core.db import utcnow
from app.kit.columns import fk, pk


class AuditLog(SQLModel, table=True):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_community_at", "community_id", "at"),)
    id: int | None = Field(default=None, sa_column=pk())
    at: datetime = Field(default_factory=utcnow)
    actor_user_id: int | None = Field(default=None, sa_column=fk("app_user.id", nullable=True))
    action: str = Field(max_length=60, description="e.g. household.update, export.totals")
    object_type: str = Field(max_length=40)
    object_id: str | None = Field(default=None, max_length=64)
    community_id: int | None = Field(default=None, sa_column=fk("community.id", nullable=True, index=False))
    request_id: str | None = Field(default=None, max_length=64)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class AuditLogPublic(SQLModel):
    id: int
    at: datetime
    actor_user_id: int | None
    action: str
    object_type: str
    object_id: str | None
    community_id: int | None
    request_id: str | None
    detail: dict[str, Any]
