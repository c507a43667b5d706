"""`jianfei reports ...`: point totals exports from the command line (audited like the API)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer
from rich.console import Console

app = typer.Typer(help="Reports: point totals exports.", no_args_is_help=True)
console = Console(stderr=True)


@app.command("export-totals")
def export_totals_cmd(
    output: Path = typer.Option(..., "--output", "-o", help="File to write (.csv or .xlsx; format from the suffix)."),
    community: int | None = typer.Option(None, help="A community id."),
    street: int | None = typer.Option(None, help="A street id (all its communities)."),
    organisation: int | None = typer.Option(None, help="An organisation id (all its communities)."),
    month: str | None = typer.Option(None, help="YYYY-MM (default: the current month)."),
    start: str | None = typer.Option(None, help="First local day YYYY-MM-DD."),
    end: str | None = typer.Option(None, help="Last local day YYYY-MM-DD."),
) -> None:
    """Write point totals per household (with building and community subtotals) to a CSV or XLSX file."""
    from sqlmodel import Session

    from app.core.db import get_engine
    from app.kit.errors import DomainError
    from app.reports.scope import ScopeKind
    from app.reports.service import ExportFormat, export_totals

    chosen = [(k, v) for k, v in ((ScopeKind.community, community), (ScopeKind.street, street),
                                  (ScopeKind.organisation, organisation)) if v is not None]
    if len(chosen) != 1:
        console.print("[red]Give exactly one of --community, --street, --organisation.[/]")
        raise typer.Exit(2)
    suffix = output.suffix.lower().lstrip(".")
    if suffix not in ("csv", "xlsx"):
        console.print("[red]The output file must end in .csv or .xlsx.[/]")
        raise typer.Exit(2)
    kind, scope_id = chosen[0]

    def day(v: str | None):
        return datetime.strptime(v, "%Y-%m-%d").date() if v else None

    from rich.progress import DownloadColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    try:
        with (
            Session(get_engine()) as session,
            Progress(SpinnerColumn(), TextColumn(f"Writing {output.name}"), DownloadColumn(), TimeElapsedColumn(), console=console) as bar,
        ):
            task = bar.add_task("export", total=None)  # rows stream from one query: the size is unknown until the end
            export = export_totals(session, None, kind, scope_id, ExportFormat(suffix), month=month, start=day(start), end=day(end))
            size = 0
            with output.open("wb") as f:
                for chunk in export.body:
                    f.write(chunk)
                    size += len(chunk)
                    bar.update(task, completed=size)
    except DomainError as e:
        console.print(f"[red]{e.zh}[/] ({e.en})")
        raise typer.Exit(1) from None
    except ValueError as e:
        console.print(f"[red]{e}[/]")
        raise typer.Exit(2) from None
    console.print(f"Wrote {output} ({size:,} bytes).")


@app.command("rollup")
def rollup_cmd(
    timezone: list[str] = typer.Option(None, "--timezone", help="Time zone(s) to roll up (default: the settings' and every community's)."),
) -> None:
    """Bring the point totals roll-up up to date (PostgreSQL): the exports read the journal live only after it.

    Safe at any time and as often as wanted (the service runs it nightly as the job `reports-rollup`; by
    hand after a bulk load); a late entry or a reversal is never lost, whichever side of the roll-up it
    falls on."""
    import time

    from sqlalchemy.exc import OperationalError

    from app.core.db import get_engine
    from app.reports.rollup import refresh, refresh_everywhere

    engine = get_engine()
    t0 = time.perf_counter()
    try:
        done = refresh(engine, timezone) if timezone else refresh_everywhere(engine)
    except OperationalError as e:  # lock_timeout: a long write holds journal_entry; nothing was changed
        console.print(f"[yellow]Not rolled up: {e.orig or e}. Try again later (the exports stay exact, reading more of the journal).[/]")
        raise typer.Exit(1) from None
    for r in done:
        console.print(f"{r.timezone}: entries up to id {r.watermark:,} (from {r.watermark_before:,}), {r.transactions} transaction(s)")
    console.print(f"Done in {time.perf_counter() - t0:.1f} s.")
