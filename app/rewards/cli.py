"""`jianfei rewards ...`: release reservations not collected in time."""

from __future__ import annotations

import typer
from rich.console import Console
from sqlmodel import Session

app = typer.Typer(help="Rewards and redemptions (积分兑换).", no_args_is_help=True)
console = Console()


@app.command("lapse")
def lapse_cmd(community: int | None = typer.Option(None, help="Only this community id (default: all).")) -> None:
    """Release held redemptions past their time: points back to the household, stock back to the item
    (the job `rewards-lapse`, run by the service every 15 minutes). Safe to repeat and to run on several
    machines at once."""
    from app.core.db import get_engine
    from app.rewards.flows import lapse_everywhere

    with Session(get_engine()) as session, console.status("Releasing reservations past their time…"):
        lapsed, points, _ = lapse_everywhere(session, community)
    console.print(f"Released {lapsed} reservations, {points} points.")
