"""`jianfei vouchers ...`: expire unclaimed points cheques."""

from __future__ import annotations

import typer
from rich.console import Console
from sqlmodel import Session

app = typer.Typer(help="Points cheques (积分支票).", no_args_is_help=True)
console = Console()


@app.command("expire")
def expire_cmd(community: int | None = typer.Option(None, help="Only this community id (default: all).")) -> None:
    """Expire unclaimed vouchers past their date (the job `vouchers-expire`, run by the service hourly).
    Safe to repeat and to run on several machines at once."""
    from app.core.db import get_engine
    from app.vouchers.service import expire_due

    with Session(get_engine()) as session, console.status("Expiring unclaimed points cheques…"):
        count, points = expire_due(session, community)
    console.print(f"Expired {count} vouchers, {points} points.")
