"""The runner against PostgreSQL: a due slot runs once, whoever asks and however many at once; every run
is recorded, a failing job too, and it stops no other job."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from app.cli import app as cli
from app.core.db import make_engine, utcnow
from app.jobs import service
from app.jobs.models import JobOutcome
from app.jobs.schedule import Daily
from app.jobs.service import MAX_ATTEMPTS, RETRY_AFTER, Verdict, run_due, run_if_due, run_now
from tests.jobs.helpers import make_job, runs


def test_a_due_slot_runs_once_and_the_next_slot_runs_again(engine):
    job, body = make_job()
    t = utcnow().replace(minute=1, second=0, microsecond=0)
    first = run_if_due(engine, job, now=t)
    assert first.verdict == Verdict.succeeded and first.counts == {"call": 1}
    assert first.slot == t.replace(minute=0)
    assert run_if_due(engine, job, now=t + timedelta(minutes=13)).verdict == Verdict.done  # same slot
    assert run_if_due(engine, job, now=t + timedelta(minutes=14)).verdict == Verdict.succeeded  # 00:15's
    assert len(body.calls) == 2
    recorded = runs(engine, job.name)
    assert [(r.slot, r.outcome, r.counts) for r in recorded] == [
        (t.replace(minute=0), JobOutcome.succeeded, {"call": 1}),
        (t.replace(minute=15), JobOutcome.succeeded, {"call": 2}),
    ]
    assert all(r.finished_at >= r.started_at and r.instance and r.error is None for r in recorded)


@pytest.mark.parametrize("round_", range(3))
def test_two_instances_at_once_run_a_due_slot_once(engine, round_):
    job, body = make_job(seconds=0.3)
    url = engine.url.render_as_string(hide_password=False)
    engines = [make_engine(url), make_engine(url)]  # two instances: a pool each
    now = utcnow()
    barrier = threading.Barrier(2)
    results, errors = [], []

    def runner(e):
        try:
            barrier.wait()
            results.append(run_if_due(e, job, now=now))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=runner, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for e in engines:
        e.dispose()
    assert not errors, errors
    assert len(body.calls) == 1
    verdicts = sorted(r.verdict for r in results)
    assert verdicts in (sorted([Verdict.succeeded, Verdict.busy]), sorted([Verdict.succeeded, Verdict.done])), verdicts
    assert [r.outcome for r in runs(engine, job.name)] == [JobOutcome.succeeded]


def test_a_failing_job_is_recorded_and_the_others_still_run(engine):
    now = utcnow()
    # Daily, two hours ago: the retries below, up to 15 minutes on, stay in the one slot.
    two_hours_ago = Daily((now - timedelta(hours=2)).astimezone(service.service_timezone()).time())
    before, _ = make_job()
    failing, failing_body = make_job(two_hours_ago, error=RuntimeError("WeChat said -1"))
    after, after_body = make_job()
    ran = run_due(engine, [before, failing, after], now=now)
    assert [r.verdict for r in ran] == [Verdict.succeeded, Verdict.failed, Verdict.succeeded]
    assert ran[1].error == "RuntimeError: WeChat said -1"
    assert len(after_body.calls) == 1
    (failed,) = runs(engine, failing.name)
    assert failed.outcome == JobOutcome.failed and failed.error == "RuntimeError: WeChat said -1" and failed.finished_at

    # The slot is tried again after RETRY_AFTER, MAX_ATTEMPTS times in all, then left to the next slot.
    assert run_if_due(engine, failing, now=utcnow()).verdict == Verdict.retry_later
    for _ in range(MAX_ATTEMPTS - 1):
        assert run_if_due(engine, failing, now=utcnow() + RETRY_AFTER).verdict == Verdict.failed
    assert run_if_due(engine, failing, now=utcnow() + RETRY_AFTER).verdict == Verdict.done
    assert len(failing_body.calls) == MAX_ATTEMPTS
    assert {r.slot for r in runs(engine, failing.name)} == {ran[1].slot}


def test_a_run_whose_runner_died_is_marked_abandoned_and_the_slot_runs(engine):
    from sqlalchemy import insert

    job, body = make_job()
    now = utcnow()
    slot = job.schedule.slot(now, service.service_timezone())
    with engine.begin() as conn:  # what a killed instance leaves: `running`, its lock gone with its connection
        conn.execute(insert(service.RUN).values(job=job.name, slot=slot, instance="gone:1", started_at=now, outcome="running", counts={}))
    assert run_if_due(engine, job, now=now).verdict == Verdict.succeeded
    assert [(r.instance, r.outcome) for r in runs(engine, job.name)] == [
        ("gone:1", JobOutcome.abandoned), (service.instance_name(), JobOutcome.succeeded)
    ]
    assert len(body.calls) == 1


def test_a_job_held_by_another_runner_is_left_to_it(engine):
    job, body = make_job()
    with service.job_lock(engine, job.name) as held:
        assert held
        assert run_if_due(engine, job).verdict == Verdict.busy
        assert run_now(engine, job).verdict == Verdict.busy
    assert body.calls == []
    assert run_now(engine, job).verdict == Verdict.succeeded
    (run,) = runs(engine, job.name)
    assert run.slot is None  # asked for by name: not a slot's run, the slot still runs when due
    assert run_if_due(engine, job).verdict == Verdict.succeeded


def test_jobs_run_and_list_from_the_command_line(client, world, engine, monkeypatch):
    """The real ledger-expiry job through `jianfei jobs run NAME`, then `jianfei jobs list`."""
    from rich.console import Console

    from app.jobs import cli as jobs_cli
    from tests.jobs.test_two_instances import LAST_YEAR, _expired, _year_end_policy
    from tests.ledger.helpers import earn

    monkeypatch.setattr(jobs_cli, "console", Console(width=250, no_color=True))

    _year_end_policy(client, world)
    for h in world.households:
        earn(engine, h, 7, when=LAST_YEAR)
    env = {"COLUMNS": "250", "NO_COLOR": "1"}
    r = CliRunner().invoke(cli, ["jobs", "run", "ledger-expiry"], env=env)
    assert r.exit_code == 0, r.output
    assert "succeeded" in r.output
    assert _expired(engine, world.community.id) == (len(world.households), 7 * len(world.households))
    r = CliRunner().invoke(cli, ["jobs", "list"], env=env)
    assert r.exit_code == 0, r.output
    for name in ("ledger-expiry", "rewards-lapse", "vouchers-expire", "reminders", "reports-rollup"):
        assert name in r.output
    assert "daily at 00:05 Asia/Shanghai" in r.output and "every 15 min" in r.output
    r = CliRunner().invoke(cli, ["jobs", "run", "no-such-job"], env=env)
    assert r.exit_code == 2 and "No such job" in r.output


def test_runs_show_in_the_metrics(client, engine):
    job, _ = make_job()
    run_now(engine, job)
    body = client.get("/metrics").text
    assert f'job_runs_total{{job="{job.name}",outcome="succeeded"}} 1.0' in body
    assert f'job_last_success_timestamp_seconds{{job="{job.name}"}}' in body
