"""`jianfei jobs ...`: the scheduled jobs, their last and next runs; run the due ones, or some by name."""

from __future__ import annotations

from datetime import datetime

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="Scheduled jobs (expiry, lapses, reminders, roll-up). The service runs them itself unless JOBS_IN_SERVICE=false.",
    no_args_is_help=True,
)
console = Console()


def _local(at: datetime | None) -> str:
    from app.jobs.service import service_timezone

    return at.astimezone(service_timezone()).strftime("%Y-%m-%d %H:%M:%S") if at else "-"


def _what(counts: dict[str, int], error: str | None) -> str:
    if error:
        return f"[red]{error[:120]}[/]"
    return ", ".join(f"{k} {v}" for k, v in counts.items())


@app.command("list")
def list_cmd() -> None:
    """Each scheduled job: its schedule, its last run (when, where, outcome, what it did) and its next run."""
    from app.core.db import get_engine
    from app.jobs.service import states

    table = Table("job", "schedule", "last run", "outcome", "did", "next run")
    for s in states(get_engine()):
        last = s.last
        outcome = "-" if last is None else last.outcome
        took = f" ({(last.finished_at - last.started_at).total_seconds():.1f} s)" if last and last.finished_at else ""
        table.add_row(
            s.job.name, s.schedule, _local(last.started_at if last else None), outcome + took,
            _what(last.counts, last.error) if last else "", "due now" if s.due else _local(s.next_at),
        )
    console.print(table)


@app.command("run")
def run_cmd(
    names: list[str] = typer.Argument(None, help="Jobs to run now, due or not (default: every job that is due)."),
    loop: bool = typer.Option(False, "--loop", help="Keep running the due jobs (every JOBS_TICK_SECONDS) until stopped: "
                              "the runner for deployments with JOBS_IN_SERVICE=false."),
) -> None:
    """Run the jobs that are due now, once (or the named ones now). Each slot of a job runs once however
    many instances run this at the same time; exits with 1 if a job failed."""
    from app.core.db import get_engine
    from app.jobs.registry import JOBS, find
    from app.jobs.service import Verdict, run_due, run_now

    if loop:
        if names:
            console.print("[red]--loop runs the due jobs; name no job with it.[/]")
            raise typer.Exit(2)
        _loop()
        return
    unknown = [n for n in names or () if find(n) is None]
    if unknown:
        console.print(f"[red]No such job: {', '.join(unknown)}.[/] Jobs: {', '.join(j.name for j in JOBS)}")
        raise typer.Exit(2)
    engine = get_engine()
    ran = [run_now(engine, find(n)) for n in names] if names else run_due(engine)
    table = Table("job", "slot", "result", "did")
    for r in ran:
        table.add_row(r.job, _local(r.slot), r.verdict.value.replace("_", " "), _what(r.counts, r.error))
    console.print(table)
    if any(r.verdict == Verdict.failed for r in ran):
        raise typer.Exit(1)


def _loop() -> None:
    """The in-service scheduler, on its own."""
    import asyncio

    from app.core.config import get_settings
    from app.core.db import get_engine
    from app.jobs.registry import JOBS
    from app.jobs.scheduler import Scheduler
    from app.kit.observability import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level)

    async def forever() -> None:
        Scheduler(get_engine(), JOBS, settings.jobs_tick_seconds).start()
        await asyncio.Event().wait()

    console.print(f"Running the due jobs every {settings.jobs_tick_seconds:g} s; Ctrl-C to stop.")
    try:
        asyncio.run(forever())
    except KeyboardInterrupt:
        pass
