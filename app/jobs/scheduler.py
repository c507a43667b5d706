"""The service runs its own jobs: a background task of the app (its lifespan) that, every
JOBS_TICK_SECONDS, hands each job whose slot may be due to a worker thread (service.run_if_due).

Every worker of every instance runs one; the advisory lock and the slot's runs let one run per slot
(service). JOBS_IN_SERVICE=false turns it off for a deployment that runs `jianfei jobs run --loop`
(or cron) instead.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from datetime import datetime
from functools import partial

from sqlalchemy.engine import Engine

from app.core.config import get_settings
from app.core.db import get_engine, utcnow
from app.jobs.registry import JOBS, Job
from app.jobs.service import Ran, Verdict, run_if_due, service_timezone

log = logging.getLogger("app.jobs")


class Scheduler:
    def __init__(self, engine: Engine, jobs: Sequence[Job] = JOBS, tick_seconds: float = 30.0):
        self.engine = engine
        self.jobs = jobs
        self.tick_seconds = tick_seconds
        self._task: asyncio.Task | None = None
        self._running: dict[str, asyncio.Future] = {}
        # The slot each job was last seen done in: no database round trip for it until the next slot.
        self._done: dict[str, datetime] = {}

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="jobs-scheduler")

    async def stop(self) -> None:
        """Stop ticking. A run under way finishes in its thread (its lock ends with it)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _loop(self) -> None:
        while True:
            self.tick(utcnow())
            # A little jitter: the workers of an instance started together do not all ask at once.
            await asyncio.sleep(self.tick_seconds * random.uniform(0.8, 1.2))

    def tick(self, now: datetime) -> None:
        tz = service_timezone()
        for job in self.jobs:
            running = self._running.get(job.name)
            if running is not None and not running.done():
                continue
            if self._done.get(job.name) == job.schedule.slot(now, tz):
                continue
            future = asyncio.ensure_future(asyncio.to_thread(run_if_due, self.engine, job))
            future.add_done_callback(partial(self._finished, job))
            self._running[job.name] = future

    def _finished(self, job: Job, future: asyncio.Future) -> None:
        if future.cancelled():
            return
        if (exc := future.exception()) is not None:  # the database, not the job: the job's own errors are recorded
            log.warning("job %s: not run (%s: %s); trying again at the next tick", job.name, type(exc).__name__, exc)
            return
        ran: Ran = future.result()
        if ran.verdict in (Verdict.succeeded, Verdict.done):
            self._done[job.name] = ran.slot


def start_in_service() -> Scheduler | None:
    """The app's scheduler, started on the running loop; None when JOBS_IN_SERVICE is off."""
    settings = get_settings()
    if not settings.jobs_in_service:
        return None
    scheduler = Scheduler(get_engine(), JOBS, settings.jobs_tick_seconds)
    scheduler.start()
    return scheduler
