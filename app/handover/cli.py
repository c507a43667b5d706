"""`jianfei handover ...`: a community's complete record as one archive, and its import elsewhere."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from sqlmodel import Session

app = typer.Typer(help="Programmes changing hands: export a community's whole record, import it into another deployment.",
                  no_args_is_help=True)
console = Console()


@app.command("export")
def export_cmd(
    community: int = typer.Option(..., "--community", "-c", help="Id of the community."),
    output: Path = typer.Option(..., "--output", "-o", dir_okay=False, help="The archive to write (.zip)."),
) -> None:
    """Export a community's complete record (places, households without phone numbers, rules, check-ins, drops, weigh-ins, redemptions, the ledger...) as one zip archive with a manifest and checksums."""
    from app.core.db import get_engine
    from app.handover.archive import export_community
    from app.kit.errors import DomainError

    with Session(get_engine()) as session:
        try:
            data, manifest = export_community(session, community)
        except DomainError as exc:
            console.print(f"[red]{exc.zh} / {exc.en}[/]")
            raise typer.Exit(2) from None
    output.write_bytes(data)
    rows = sum(f["rows"] for f in manifest["files"].values())
    console.print(f"[green]Exported[/] {manifest['community']['name']}: {rows:,} rows in {len(manifest['files'])} files "
                  f"to {output} ({len(data):,} bytes, schema {manifest['schema_revision']}).")


@app.command("import")
def import_cmd(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="The archive (jianfei handover export)."),
    street: int = typer.Option(..., "--street", "-s", help="Id of the street (here) the community goes in."),
) -> None:
    """Import a community archive: checksums and schema checked, new ids given, ledger keys that name a row renumbered, the ledger verified; one transaction. Importing the same archive again changes nothing."""
    from app.core.db import get_engine
    from app.handover.archive import import_community
    from app.kit.errors import DomainError

    with Session(get_engine()) as session:
        try:
            done = import_community(session, path.read_bytes(), street)
        except DomainError as exc:
            console.print(f"[red]{exc.zh} / {exc.en}[/]")
            raise typer.Exit(1) from None
    table = Table("table", "rows added")
    for name, n in done["inserted"].items():
        if n:
            table.add_row(name, str(n))
    console.print(table)
    console.print(f"[green]Imported[/] as community {done['community_id']}: {sum(done['inserted'].values()):,} rows, "
                  f"{done['users_created']} users (names only), {done['codes_changed']} door-plate codes changed (reprint their labels); "
                  "the ledger verifies.")
    console.print(json.dumps(done, ensure_ascii=False), soft_wrap=True)
