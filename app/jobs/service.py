"""Running the jobs: each due slot once across every instance, each run recorded in `job_run`.

A runner first takes the job's PostgreSQL advisory lock (a second runner, on this instance or another,
moves on), then, holding it, reads the runs of the current slot and runs the job only if the slot has
no success yet. The lock is held until the run is recorded, so a `running` row found by the lock's
holder belongs to a runner that died: it is marked `abandoned` and the slot is tried again.
A failed slot is tried again after RETRY_AFTER, MAX_ATTEMPTS times at most; then it waits for the next.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.core.config import get_settings
from app.core.db import utcnow
from app.jobs.models import JobOutcome, JobRun
from app.jobs.registry import JOBS, Job
from app.kit.observability import REGISTRY

RUN = JobRun.__table__
RETRY_AFTER = timedelta(minutes=5)
MAX_ATTEMPTS = 3  # per slot, failed or abandoned
KEEP = timedelta(days=90)  # runs older than this are forgotten
LOCK_NAMESPACE = 0x6A6F6273  # "jobs": the first key of every job's advisory lock (int4)

log = logging.getLogger("app.jobs")

RUNS = Counter("job_runs_total", "Job runs by this process, by job and outcome", ["job", "outcome"], registry=REGISTRY)
DURATION = Histogram(
    "job_duration_seconds", "Duration of the job runs of this process", ["job"], registry=REGISTRY,
    buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600),
)
LAST_SUCCESS = Gauge(
    "job_last_success_timestamp_seconds", "When a run of the job by this process last succeeded (Unix time)",
    ["job"], registry=REGISTRY,
)


class Verdict(StrEnum):
    """What a runner did with a job."""

    succeeded = "succeeded"
    failed = "failed"
    done = "done"  # the slot has run (or used its attempts): nothing to do until the next slot
    retry_later = "retry_later"  # the slot's last attempt failed less than RETRY_AFTER ago
    busy = "busy"  # running right now on another instance, or another thread of this one


@dataclass
class Ran:
    job: str
    verdict: Verdict
    slot: datetime | None = None
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0


@dataclass
class JobState:
    """A job as `jianfei jobs list` shows it."""

    job: Job
    schedule: str
    last: JobRun | None
    due: bool  # its current slot has not run yet (or may be retried now)
    next_at: datetime  # when it runs next: now if due, else its next slot


def service_timezone() -> ZoneInfo:
    return ZoneInfo(get_settings().timezone)


def instance_name() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}"


def slot_verdict(runs: Sequence[tuple[str, datetime | None]], now: datetime) -> Verdict | None:
    """None when the slot should run now, given its runs so far (outcome, finished_at)."""
    outcomes = {outcome for outcome, _ in runs}
    if JobOutcome.running in outcomes:
        return Verdict.busy
    if JobOutcome.succeeded in outcomes or len(runs) >= MAX_ATTEMPTS:
        return Verdict.done
    # A failure waits a little (what failed may be passing: a lock held, WeChat busy); a run abandoned
    # by a dead runner is found long after it died and is tried again at once.
    last = max((at for o, at in runs if o == JobOutcome.failed and at is not None), default=None)
    if last is not None and now - last < RETRY_AFTER:
        return Verdict.retry_later
    return None


@contextmanager
def job_lock(engine: Engine, name: str) -> Iterator[bool]:
    """The job's advisory lock, if free; held by an open transaction on a connection of its own until
    the block ends. Transaction-level, so it also holds through PgBouncer's transaction pooling and is
    released when the connection goes, whatever became of the process."""
    with engine.connect() as conn:
        held = conn.execute(
            text("SELECT pg_try_advisory_xact_lock(CAST(:ns AS integer), CAST(:key AS integer))"),
            {"ns": LOCK_NAMESPACE, "key": _lock_key(name)},
        ).scalar_one()
        try:
            yield held
        finally:
            conn.rollback()


def _lock_key(name: str) -> int:
    return zlib.crc32(name.encode()) - 2**31  # a signed int4


def run_due(engine: Engine, jobs: Sequence[Job] = JOBS, *, now: datetime | None = None) -> list[Ran]:
    """Run, one after the other, the jobs whose current slot is due. A failing job is recorded and the
    others still run."""
    return [run_if_due(engine, job, now=now) for job in jobs]


def run_if_due(engine: Engine, job: Job, *, now: datetime | None = None) -> Ran:
    """Run the job if its slot at `now` is due and no runner holds it."""
    now = now or utcnow()
    slot = job.schedule.slot(now, service_timezone())
    with job_lock(engine, job.name) as held:
        if not held:
            return Ran(job.name, Verdict.busy, slot)
        with Session(engine) as session:
            _abandon_dead_runs(session, job.name)
            runs = session.execute(select(RUN.c.outcome, RUN.c.finished_at).where(RUN.c.job == job.name, RUN.c.slot == slot)).all()
            verdict = slot_verdict([tuple(r) for r in runs], now)
            if verdict is not None:
                session.commit()
                return Ran(job.name, verdict, slot)
            run_id = _start(session, job.name, slot)
        return _execute(engine, job, run_id, slot)


def run_now(engine: Engine, job: Job) -> Ran:
    """Run the job now, due or not (`jianfei jobs run NAME`); recorded without a slot. Busy if another
    runner holds it."""
    with job_lock(engine, job.name) as held:
        if not held:
            return Ran(job.name, Verdict.busy)
        with Session(engine) as session:
            _abandon_dead_runs(session, job.name)
            run_id = _start(session, job.name, None)
        return _execute(engine, job, run_id, None)


def _abandon_dead_runs(session: Session, name: str) -> None:
    """Only the lock's holder can have a run going, so the `running` rows it finds are dead runners'."""
    session.execute(
        update(RUN).where(RUN.c.job == name, RUN.c.outcome == JobOutcome.running)
        .values(outcome=JobOutcome.abandoned, finished_at=utcnow(), error="its runner stopped before the end")
    )


def _start(session: Session, name: str, slot: datetime | None) -> int:
    run_id = session.execute(
        insert(RUN).values(job=name, slot=slot, instance=instance_name(), started_at=utcnow(), outcome=JobOutcome.running, counts={})
        .returning(RUN.c.id)
    ).scalar_one()
    session.execute(delete(RUN).where(RUN.c.job == name, RUN.c.started_at < utcnow() - KEEP))
    session.commit()
    return run_id


def _execute(engine: Engine, job: Job, run_id: int, slot: datetime | None) -> Ran:
    t0 = time.perf_counter()
    try:
        counts, error = dict(job.run() or {}), None
    except Exception as exc:  # noqa: BLE001 - any failure is the run's outcome, recorded; the next job still runs
        log.exception("job %s failed", job.name)
        counts, error = {}, f"{type(exc).__name__}: {exc}"[:2000]
    seconds = time.perf_counter() - t0
    outcome = JobOutcome.failed if error else JobOutcome.succeeded
    with Session(engine) as session:
        session.execute(update(RUN).where(RUN.c.id == run_id).values(outcome=outcome, finished_at=utcnow(), counts=counts, error=error))
        session.commit()
    RUNS.labels(job.name, outcome.value).inc()
    DURATION.labels(job.name).observe(seconds)
    if not error:
        LAST_SUCCESS.labels(job.name).set(utcnow().timestamp())
        log.info("job %s succeeded in %.1f s: %s", job.name, seconds, counts)
    return Ran(job.name, Verdict(outcome.value), slot, counts, error, seconds)


def states(engine: Engine, jobs: Sequence[Job] = JOBS, *, now: datetime | None = None) -> list[JobState]:
    """Each job's schedule, last run and next run."""
    now = now or utcnow()
    tz = service_timezone()
    out = []
    with Session(engine) as session:
        latest = (
            select(JobRun).where(JobRun.job.in_([j.name for j in jobs]))
            .order_by(JobRun.job, JobRun.started_at.desc()).distinct(JobRun.job)
        )
        last = {row.job: row for row in session.execute(latest).scalars()}
        for job in jobs:
            slot = job.schedule.slot(now, tz)
            runs = [tuple(r) for r in session.execute(
                select(RUN.c.outcome, RUN.c.finished_at).where(RUN.c.job == job.name, RUN.c.slot == slot)
            )]
            verdict = slot_verdict(runs, now)
            if verdict is None:
                next_at = now
            elif verdict == Verdict.retry_later:
                next_at = max(at for o, at in runs if o == JobOutcome.failed and at is not None) + RETRY_AFTER
            else:
                next_at = job.schedule.next_slot(now, tz)
            out.append(JobState(job, job.schedule.describe(tz), last.get(job.name), verdict is None, next_at))
    return out
