"""`jianfei ledger ...`: verify balances against postings, run expiry."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlmodel import Session

app = typer.Typer(help="The points ledger: verify it, expire points.", no_args_is_help=True)
console = Console()


@app.command("verify")
def verify_cmd(community: int | None = typer.Option(None, help="Only this community id (default: all).")) -> None:
    """Recompute every household balance from the postings and report any difference (exit 1 if any)."""
    from app.core.db import get_engine
    from app.ledger.verify import verify

    with Session(get_engine()) as session, console.status("Recomputing every balance from its postings…"):
        report = verify(session, community)
    console.print(f"accounts checked: {report.accounts_checked}, entries checked: {report.entries_checked}")
    if report.clean:
        console.print("[green]Ledger is consistent: every balance equals the sum of its postings.[/]")
        return
    table = Table("problem", "detail")
    for m in report.balance_mismatches:
        table.add_row("balance mismatch", str(m))
    for e in report.unbalanced_entries:
        table.add_row("entry does not sum to zero", str(e))
    for c in report.chain_breaks:
        table.add_row("running balance chain", str(c))
    console.print(table)
    raise typer.Exit(1)


@app.command("expire")
def expire_cmd(community: int | None = typer.Option(None, help="Only this community id (default: all).")) -> None:
    """Post the expiry entries that are due now (the job `ledger-expiry`, run by the service nightly).
    Safe to repeat and to run on several machines at once."""
    from app.core.db import get_engine
    from app.ledger.expiry import run_expiry_everywhere

    with Session(get_engine()) as session, Progress(console=console, transient=True) as bar:
        task = bar.add_task("Expiring points", total=None)
        communities, households, points = run_expiry_everywhere(
            session, community, progress=lambda done, total: bar.update(task, completed=done, total=total)
        )
    console.print(f"Expired {points} points in {households} households across {communities} communities.")
