"""Jobs made for the tests: a unique name (the database is shared by a worker's tests), a body that
counts its calls and may wait or fail."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlmodel import Session

from app.jobs.models import JobRun
from app.jobs.registry import Job
from app.jobs.schedule import Every, Schedule


@dataclass
class Recorder:
    seconds: float = 0.0
    error: Exception | None = None
    calls: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self) -> dict[str, int]:
        with self.lock:
            self.calls.append(threading.current_thread().name)
            n = len(self.calls)
        time.sleep(self.seconds)
        if self.error is not None:
            raise type(self.error)(*self.error.args)  # a fresh one each call, as a real failure
        return {"call": n}


def make_job(schedule: Schedule = Every(15), **recorder) -> tuple[Job, Recorder]:
    body = Recorder(**recorder)
    return Job(f"test-{uuid.uuid4().hex[:12]}", schedule, body, "a test job"), body


def runs(engine, name: str) -> list[JobRun]:
    with Session(engine) as s:
        return list(s.execute(select(JobRun).where(JobRun.job == name).order_by(JobRun.id)).scalars())
