"""`jianfei reminders run`: send the reminders that are due now (the job `reminders`, which the service
runs every 15 minutes; safe on any number of instances)."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlmodel import Session

app = typer.Typer(help="Reminders through WeChat subscribe messages.", no_args_is_help=True)
console = Console()


@app.command("run")
def run_cmd(batch: int = typer.Option(50, min=1, max=1000, help="Reminders claimed at a time.")) -> None:
    """Record the reminders due now (recycling day tomorrow, compost ready) and send them.
    Each is sent at most once, also when several machines run this at the same time."""
    from app.core.db import get_engine
    from app.reminders.service import run_reminders

    with Progress(TextColumn("Sending reminders"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("send", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        with Session(get_engine(), expire_on_commit=False) as session:
            report = run_reminders(session, batch=batch, progress=progress)
    table = Table("outcome", "reminders")
    table.add_row("newly due", str(report.enqueued))
    for status, n in sorted(report.outcomes.items()):
        table.add_row(str(status), str(n))
    console.print(table)
