"""The service runs its jobs itself (JOBS_IN_SERVICE): the app's background scheduler runs a due job
once, with one worker or several, and the container (two granian workers) runs all five with no crontab."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from datetime import time as dtime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.core.config import get_settings
from app.jobs import scheduler
from app.jobs.models import JobOutcome
from app.jobs.registry import JOBS
from app.main import create_app
from tests.conftest import drop_pg_database, fresh_pg_database
from tests.jobs.helpers import make_job, runs
from tests.support import PRODUCTION_WECHAT

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def in_service(monkeypatch, engine, clock):
    """Turn the in-service scheduler on, ticking every 50 ms, with the given jobs; the clock 7½ minutes
    into a quarter hour, so that a test's ticks all fall in one slot of the test jobs (Every(15))."""
    clock.set_local(dtime(12, 7, 30))

    def use(jobs, on: bool = True):
        monkeypatch.setenv("JOBS_IN_SERVICE", "true" if on else "false")
        monkeypatch.setenv("JOBS_TICK_SECONDS", "0.05")
        monkeypatch.setattr(scheduler, "JOBS", tuple(jobs))
        get_settings.cache_clear()

    yield use
    monkeypatch.undo()
    get_settings.cache_clear()


def _wait(check, seconds: float = 15.0, state=None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out; state: {state() if state else None}")


def test_the_service_runs_a_due_job_once(engine, in_service):
    job, body = make_job()
    failing, _ = make_job(error=RuntimeError("boom"))
    in_service([failing, job])
    with TestClient(create_app()):
        _wait(lambda: [r.outcome for r in runs(engine, job.name)] == [JobOutcome.succeeded])
        time.sleep(0.5)  # ten more ticks: the slot is done
    assert len(body.calls) == 1
    assert [r.outcome for r in runs(engine, failing.name)] == [JobOutcome.failed]  # recorded, and stopped nothing


def test_two_workers_run_a_due_job_once(engine, in_service):
    job, body = make_job(seconds=0.3)
    in_service([job])
    with TestClient(create_app()), TestClient(create_app()):
        _wait(lambda: [r.outcome for r in runs(engine, job.name)] == [JobOutcome.succeeded])
        time.sleep(0.5)
    assert len(body.calls) == 1


def test_jobs_in_service_off_runs_nothing(engine, in_service):
    job, body = make_job()
    in_service([job], on=False)
    with TestClient(create_app()):
        time.sleep(0.5)
    assert body.calls == [] and runs(engine, job.name) == []


def test_the_container_runs_every_job_with_no_crontab(tmp_path):
    """scripts/docker-entrypoint.sh with two workers on a fresh database: each of the five jobs runs,
    each slot once across the workers."""
    from sqlalchemy import create_engine, text

    url = fresh_pg_database("jobs")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = os.environ | {
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "DATABASE_URL": url,
        "ENVIRONMENT": "production",
        **PRODUCTION_WECHAT,
        "JWT_SECRET": "jobs-secret-" + "z" * 32,
        "PHONE_HASH_KEY": "jobs-phone-key",
        "DATA_DIR": str(tmp_path),
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "PYTHONPATH": str(ROOT),
        "JOBS_IN_SERVICE": "true",
        "JOBS_TICK_SECONDS": "0.2",
    }
    proc = subprocess.Popen([str(ROOT / "scripts" / "docker-entrypoint.sh")], cwd=tmp_path, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    names = {j.name for j in JOBS}

    def succeeded() -> list[tuple[str, object, str]]:
        with db.connect() as conn:
            try:
                return [tuple(r) for r in conn.execute(text("SELECT job, slot, instance FROM job_run WHERE outcome = 'succeeded'"))]
            except Exception:  # noqa: BLE001 - not migrated yet
                return []

    try:
        def runs() -> list:
            with db.connect() as conn:
                try:
                    return [tuple(r) for r in conn.execute(text("SELECT job, outcome, error FROM job_run ORDER BY id"))]
                except Exception:  # noqa: BLE001 - not migrated yet
                    return ["not migrated"]

        _wait(lambda: {job for job, _, _ in succeeded()} == names, 120, runs)
        time.sleep(1.5)  # several more ticks of both workers
        done = succeeded()
        assert max(Counter((job, slot) for job, slot, _ in done).values()) == 1, done
        with db.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM job_run WHERE outcome <> 'succeeded'")).scalar() == 0
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
        db.dispose()
        drop_pg_database(url)
