"""One row per job run: when, for which slot, on which instance, how it ended and what it did."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Column, Index, String, Text
from sqlmodel import Field, SQLModel

from app.core.db import utcnow
from app.kit.columns import pk


class JobOutcome(StrEnum):
    running = "running"
    succeeded = "succeeded"
    failed = "failed"  # raised; `error` says what, the slot is tried again (service.RETRY_AFTER)
    abandoned = "abandoned"  # its instance died mid-run (found so by the next runner of the job)


class JobRun(SQLModel, table=True):
    __tablename__ = "job_run"
    __table_args__ = (
        Index("ix_job_run_job_slot", "job", "slot"),
        Index("ix_job_run_job_started", "job", "started_at"),
    )
    id: int | None = Field(default=None, sa_column=pk())
    job: str = Field(sa_column=Column(String(40), nullable=False))
    # The scheduled moment this run is for; None for a run asked for by name (`jianfei jobs run NAME`).
    slot: datetime | None = None
    instance: str = Field(sa_column=Column(String(64), nullable=False), description="host:pid")
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    outcome: str = Field(sa_column=Column(String(10), nullable=False))
    counts: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
