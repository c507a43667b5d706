"""`jianfei ledger ...`: verify balances against postings, run expiry."""

from __future__ import annotations

from contextlib import nullcontext
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.progress import track
from rich.table import Table
from sqlmodel import Session, select

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
    """Post the expiry entries that are due now. Safe to repeat and to run on several machines at once."""
    from app.core.db import get_engine
    from app.ledger.expiry import run_expiry
    from app.places.models import Community

    with Session(get_engine()) as session:
        stmt = select(Community.id, Community.timezone)
        if community is not None:
            stmt = stmt.where(Community.id == community)
        communities = session.exec(stmt).all()
        total_h = total_p = 0
        few = len(communities) < 5  # a bar per community is noise for a few: a spinner while they run
        with console.status("Expiring points…") if few else nullcontext():
            for cid, tz in track(communities, description="Expiring points", console=console, disable=few):
                _, households, points = run_expiry(session, cid, ZoneInfo(tz))
                total_h += households
                total_p += points
    console.print(f"Expired {total_p} points in {total_h} households across {len(communities)} communities.")
