"""The `jianfei` command line: serve, migrate, create the platform admin, import rosters, print labels,
generate demo data, run the fake WeChat server; each domain's `cli.py` adds its group (ledger verify and
expire, reports export-totals, rewards lapse, vouchers expire...)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import typer
from rich.console import Console

app = typer.Typer(
    help="减废存折 service: operator commands. `jianfei COMMAND --help` says what each one does.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()


def _register_subcommands() -> None:
    """Each domain with an `app/<domain>/cli.py` exposing `app` gets `jianfei <domain> ...`."""
    from app.domains import domain_modules

    for module in domain_modules("cli"):
        app.add_typer(module.app, name=module.__name__.split(".")[1])


_register_subcommands()


@app.callback()
def _database(ctx: typer.Context) -> None:
    # Without DATABASE_URL, the command that first needs the database starts the embedded PostgreSQL
    # (app.core.embedded) and stops it when it ends; a server already running is used as it is.
    from app.core.config import get_settings
    from app.core.embedded import on_demand

    if not get_settings().database_url:
        ctx.with_resource(on_demand())


def _prepare(seed: bool) -> None:
    from sqlmodel import Session

    from app.core.config import check_production_settings, get_settings
    from app.core.db import get_engine
    from app.core.migrate import upgrade

    settings = get_settings()
    check_production_settings(settings)
    upgrade(settings.resolved_database_url())
    if seed and settings.seed_demo and not settings.is_production:
        from app.demo import DEMO_PASSWORD, seed_demo

        with Session(get_engine()) as session:
            if seed_demo(session) is not None:
                console.print(f"[green]Seeded the demo community[/]: sign in as demo-committee / {DEMO_PASSWORD}")


@app.command()
def migrate() -> None:
    """Bring the database schema up to date (Alembic upgrade to head)."""
    from app.core.config import get_settings
    from app.core.migrate import upgrade

    upgrade(get_settings().resolved_database_url())
    console.print("[green]Database is at the latest migration.[/]")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(1, help="Worker processes."),
    fake_wechat: bool = typer.Option(True, help="In development, also run the fake WeChat server on port 8765."),
    seed: bool = typer.Option(True, help="Seed the demo community on first start (never in production)."),
) -> None:
    """Migrate the database, seed the demo community, and serve the API (docs at /docs)."""
    import uvicorn

    from app.core.config import get_settings

    settings = get_settings()
    _prepare(seed)
    if fake_wechat and not settings.is_production and settings.wechat_api_base.startswith("http://127.0.0.1:8765"):
        from app.wechat.fake import FakeWechatServer

        FakeWechatServer(port=8765, app_id=settings.wechat_app_id, app_secret=settings.wechat_app_secret).start()
        console.print("Fake WeChat server on http://127.0.0.1:8765 (wx.login code: code-<name>)")
    console.print(f"API on http://{host}:{port}  ·  docs: http://{host}:{port}/docs")
    uvicorn.run("app.main:app", host=host, port=port, workers=workers, log_level="warning", access_log=False)


@app.command()
def backup(
    output: Path | None = typer.Option(
        None, "--output", "-o", help="A folder (a new jianfei-<UTC time>.dump in it) or a file name with an extension. Default: BACKUP_DIR (data/backups)."
    ),
    keep: int | None = typer.Option(None, "--keep", min=1, help="Then keep only this many backups in the folder (default BACKUP_KEEP)."),
    database_url: str | None = typer.Option(None, "--database-url", help="Back up this database instead of the service's."),
) -> None:
    """Back up the whole database with pg_dump (custom format, one consistent snapshot: the service may keep running).

    The file is checked with pg_restore --list and its SHA-256 written beside it (.sha256). The service does this daily itself (job `backup`) for the embedded database.
    """
    from app.backup.service import BackupError
    from app.backup.service import backup as run_backup
    from app.core.config import get_settings

    settings = get_settings()
    try:
        with console.status("Dumping the database…"):
            done = run_backup(
                database_url or settings.resolved_database_url(), output,
                keep=keep if keep is not None else settings.backup_keep,
            )
    except BackupError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    console.print(f"[green]Backed up[/] to {done.path} ({done.bytes:,} bytes, sha256 {done.sha256[:16]}…).")
    for old in done.removed:
        console.print(f"Removed the older backup {old.name}.")


@app.command()
def restore(
    path: Path = typer.Argument(..., dir_okay=False, help="The backup file (jianfei backup's, or any pg_dump -Fc archive of this service)."),
    force: bool = typer.Option(False, "--force", help="Replace everything in a database that is not empty (its public schema is dropped first)."),
    database_url: str | None = typer.Option(None, "--database-url", help="Restore into this database instead of the service's."),
    migrate: bool = typer.Option(True, help="Migrate to head after the restore (a backup from an earlier version)."),
) -> None:
    """Restore a backup with pg_restore into an empty database, then migrate it and verify the ledger.

    Checks the file first (its .sha256 if present, and pg_restore --list), refuses a database that holds tables unless --force, and restores in one transaction: nothing half-restored. Stop the service first when restoring into its own database. Exits with 1 when the restore fails or the ledger does not verify.
    """
    from sqlmodel import Session

    from app.backup.service import BackupError
    from app.backup.service import restore as run_restore
    from app.core.config import _psycopg_url, get_settings
    from app.core.db import make_engine
    from app.ledger.verify import verify

    url = _psycopg_url(database_url) if database_url else get_settings().resolved_database_url()
    try:
        with console.status("Restoring…"):
            done = run_restore(path, url, force=force, migrate=migrate)
    except BackupError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    checksum = {True: "checksum matches", None: "no .sha256 beside it"}[done.checksum]
    console.print(f"Restored {done.entries} archive entries ({checksum}){' after clearing the database' if done.cleared else ''}; "
                  f"schema {done.revision_before} → {done.revision_after}.")
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            report = verify(session)
    finally:
        engine.dispose()
    console.print(f"ledger verify: accounts checked: {report.accounts_checked}, entries checked: {report.entries_checked}")
    if not report.clean:
        console.print(f"[red]The ledger does not verify[/]: {report.balance_mismatches[:5]} {report.unbalanced_entries[:5]} {report.chain_breaks[:5]}")
        raise typer.Exit(1)
    console.print("[green]Ledger is consistent: every balance equals the sum of its postings.[/]")


@app.command("create-admin")
def create_admin(
    username: str = typer.Argument(..., help="Login name of the platform admin."),
    password: str = typer.Option(..., prompt=True, hide_input=True, confirmation_prompt=True, help="Password (asked when not given)."),
) -> None:
    """Create the platform admin (or reset their password)."""
    from sqlmodel import Session

    from app.core.db import get_engine
    from app.identity.service import ensure_platform_admin

    if len(password) < 8:
        console.print("[red]The password needs at least 8 characters.[/]")
        raise typer.Exit(2)
    with Session(get_engine(), expire_on_commit=False) as session:  # the user is printed after the commit
        user = ensure_platform_admin(session, username, password)
    console.print(f"[green]Platform admin {user.username} is ready.[/]")


@app.command("fake-wechat")
def fake_wechat_cmd(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8765, help="Port to listen on."),
) -> None:
    """Run the fake WeChat server on its own (same endpoints and error codes as WeChat)."""
    from app.core.config import get_settings
    from app.wechat.fake import FakeWechatServer

    s = get_settings()
    server = FakeWechatServer(host=host, port=port, app_id=s.wechat_app_id, app_secret=s.wechat_app_secret).start()
    console.print(f"Fake WeChat server on {server.url}; Ctrl-C to stop.")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


@app.command()
def demo() -> None:
    """Seed the demo community (does nothing if it exists)."""
    os.environ.setdefault("SEED_DEMO", "true")
    _prepare(seed=True)


@app.command("import-roster")
def import_roster_cmd(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="The roster file: .xlsx, or .csv in UTF-8 or GBK."),
    community: int = typer.Option(..., "--community", "-c", help="Id of the community the households live in."),
    mode: str = typer.Option(
        "dry_run",
        "--mode",
        "-m",
        help="dry_run: only check the file and list its problems (the default). "
        "valid_rows: import every valid row, list the others. "
        "all_or_nothing: import only if every row is valid.",
    ),
    compound: int | None = typer.Option(None, "--compound", help="Only match buildings of this compound (id); needed with --create-buildings."),
    create_buildings: bool = typer.Option(False, "--create-buildings", help="Create the buildings the file names but the community lacks, in --compound."),
    errors_out: Path | None = typer.Option(None, "--errors", help="Write every problem to this CSV file (opens in Excel)."),
    english: bool = typer.Option(False, "--english", help="Report problems in English instead of Chinese."),
) -> None:
    """Import a household roster (花名册) from a spreadsheet into a community.

    Columns, with Chinese or English headers: 楼栋/building, 单元/unit, 门牌/door_plate, 人数/members, 电话/phone, 姓名/name (the name is read but never stored). Importing the same file again creates nothing new; rows whose members or phone changed update their household.

    Exits with 1 when the file has problems, 2 when it cannot be read at all.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table
    from sqlmodel import Session

    from app.core.db import get_engine
    from app.kit.errors import DomainError
    from app.roster import service as roster
    from app.roster.models import ImportMode

    try:
        import_mode = ImportMode(mode)
    except ValueError:
        console.print(f"[red]--mode must be one of: {', '.join(m.value for m in ImportMode)}[/]")
        raise typer.Exit(2) from None
    options = roster.ImportOptions(mode=import_mode, compound_id=compound, create_buildings=create_buildings)
    stages = {"validate": "Checking rows", "write": "Writing households"}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stages.get(stage, stage), total=total)
            bar.update(tasks[stage], completed=done, total=total)

        with Session(get_engine(), expire_on_commit=False) as session:
            try:
                record = roster.import_roster(
                    session,
                    community_id=community,
                    data=path.read_bytes(),
                    filename=path.name,
                    options=options,
                    actor_user_id=None,
                    progress=progress,
                    via="cli",
                )
            except DomainError as exc:
                bar.stop()
                console.print(f"[red]{exc.en if english else exc.zh}[/]")
                raise typer.Exit(2) from None
    report = roster.to_public(record, english)
    summary = Table(show_header=False, box=None)
    summary.add_row("rows", str(report.rows))
    summary.add_row("valid rows", str(report.valid_rows))
    verb = "" if report.applied else " (would be)"
    summary.add_row(f"created{verb}", str(report.created))
    summary.add_row(f"updated{verb}", str(report.updated))
    summary.add_row("unchanged", str(report.unchanged))
    summary.add_row(f"buildings created{verb}", str(report.buildings_created))
    summary.add_row("problems", str(report.error_count))
    console.print(summary)
    if report.errors:
        problems = Table("row", "column", "problem")
        for e in report.errors[:20]:
            problems.add_row(str(e.row), e.column, e.message)
        console.print(problems)
        if report.error_count > 20:
            console.print(f"... and {report.error_count - 20} more")
    if errors_out is not None:
        errors_out.write_bytes(roster.errors_csv(record, english))
        console.print(f"Problems written to {errors_out}")
    if report.applied:
        console.print(f"[green]Imported[/] (import #{report.id}).")
    elif import_mode == ImportMode.dry_run:
        console.print("Dry run: nothing was stored. Run again with --mode valid_rows or all_or_nothing to import.")
    else:
        console.print("[yellow]Nothing was imported: the file has problems (all_or_nothing).[/]")
    if report.error_count:
        raise typer.Exit(1)


@app.command("labels")
def labels_cmd(
    output: Path = typer.Option(..., "--output", "-o", dir_okay=False, help="Where to write the PDF."),
    building: int | None = typer.Option(None, "--building", "-b", help="Print every household of this building (id)."),
    household: list[int] = typer.Option([], "--household", help="Print this household (id); repeat for several."),
    per_page: bool = typer.Option(False, "--per-page", help="One large label per page instead of 12 labels (3 × 4) per A4 page."),
) -> None:
    """Print door-plate QR labels (A4 PDF) for a building or chosen households.

    Each label has the QR code volunteers scan, the door plate in Chinese (3号楼 1单元 302), the community name and the short code to type in when a camera fails.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from sqlmodel import Session

    from app.core.db import get_engine
    from app.kit.errors import DomainError
    from app.labels.service import LabelLayout, operator_labels

    if building is None and not household:
        console.print("[red]Say what to print: --building ID and/or --household ID.[/]")
        raise typer.Exit(2)
    layout = LabelLayout.single if per_page else LabelLayout.sheet
    with Progress(TextColumn("Drawing labels"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("labels", total=None)
        with Session(get_engine(), expire_on_commit=False) as session:
            try:
                pdf, count = operator_labels(
                    session,
                    building_id=building,
                    household_ids=household,
                    layout=layout,
                    progress=lambda done, total: bar.update(task, completed=done, total=total),
                )
            except DomainError as exc:
                bar.stop()
                console.print(f"[red]{exc.zh} / {exc.en}[/]")
                raise typer.Exit(2) from None
    output.write_bytes(pdf)
    console.print(f"[green]{count} labels[/] written to {output}.")


@app.command("generate-demo")
def generate_demo(
    seed: int = typer.Option(1, "--seed", help="Same seed, same street: names, door plates, phones and codes."),
    communities: int = typer.Option(3, "--communities", min=1, max=200, help="How many communities (社区) the street has."),
    households: int = typer.Option(1000, "--households", min=10, max=50_000, help="About how many households each community has."),
    residents: float = typer.Option(0.4, "--residents", min=0.0, max=1.0, help="Share of households with residents signed in through WeChat."),
    days: int = typer.Option(
        7, "--days", min=0, max=400, help="Days to replay, up to yesterday (365 for a year; 0 for places and people only)."
    ),
    workers: int = typer.Option(
        2, "--workers", min=1, max=16, help="Communities replayed at once in separate processes ."
    ),
    bulk_load: bool = typer.Option(
        False, "--bulk-load", help="PostgreSQL, as a superuser: skip the database's per-row foreign-key checks while replaying "
        "(as pg_restore --disable-triggers does); ~40 % less database CPU for benchmark streets. Unique keys and checks still hold.",
    ),
) -> None:
    """Generate a realistic demo street: places, staff of every role, residents, and days of check-ins, compost and exchange days.

    The days are replayed one by one through the services (check-ins; compost bins fed, closed, cured, opened and collected; monthly recycling days with their destinations; monthly exchange days at the counter) and the ledger, so `jianfei ledger verify` passes. For demos and benchmarks (30 communities of 2,000 households make a 60,000-household street). Staff sign in with the password demo-pass-2026; their user names are printed at the end.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table
    from sqlmodel import Session

    from app.core.db import get_engine
    from app.generator.plan import plan_street
    from app.generator.service import DEMO_PASSWORD, build_street
    from app.kit.errors import DomainError

    plan = plan_street(seed, communities, households)
    with Progress(TextColumn("Building the street"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("street", total=plan.households)
        with Session(get_engine(), expire_on_commit=False) as session:
            try:
                built = build_street(
                    session, plan, resident_share=residents, progress=lambda _stage, done, total: bar.update(task, completed=done, total=total)
                )
            except DomainError as exc:
                bar.stop()
                console.print(f"[red]{exc.zh} / {exc.en}[/]")
                raise typer.Exit(2) from None
    activity = {}
    if days:
        from zoneinfo import ZoneInfo

        from app.core import clock
        from app.generator.activity import replay, replay_engine, replay_street

        engine = get_engine()
        url = engine.url.render_as_string(hide_password=False)
        today = clock.now().astimezone(ZoneInfo("Asia/Shanghai")).date()
        parallel = workers > 1 and len(built.communities) > 1
        with Progress(TextColumn("Replaying days"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console) as bar:
            if parallel:  # communities in worker processes: progress by community
                task = bar.add_task("communities", total=len(built.communities))
                activity = replay_street(
                    url, [(c.id, c.staff) for c in built.communities], seed=seed, days=days, today=today, workers=workers,
                    bulk_load=bulk_load, done=lambda _cid, _summary: bar.advance(task),
                )
            else:  # one process: progress by day
                task = bar.add_task("days", total=days * len(built.communities))
                replaying = replay_engine(url, bulk_load=bulk_load)
                with Session(replaying, expire_on_commit=False) as session:
                    for c in built.communities:
                        activity[c.id] = replay(
                            session, seed=seed, community_id=c.id, staff=c.staff, days=days, today=today,
                            progress=lambda _done, _total: bar.advance(task),
                        )
                if replaying is not engine:
                    replaying.dispose()
    table = Table("id", "community", "households", "residents", "check-ins", "compost", "weigh-ins", "redeemed")
    for c in built.communities:
        a = activity.get(c.id)
        table.add_row(
            str(c.id), c.name, str(c.households), str(c.residents), str(a.scans if a else 0),
            str(a.compost_drops if a else 0), str(a.weigh_ins if a else 0), str(a.redemptions if a else 0),
        )
    console.print(table)
    console.print(
        f"[green]{plan.name}[/] (street {built.street_id}): {built.households} households in {len(built.communities)} communities. "
        f"Sign in as demo{seed}-c<N>-committee, -volunteer1…4, -supervisor, -clerk, -keeper (community N in the table order), "
        f"{built.org_admin} (organisation) or {built.street_viewer} (street); password {DEMO_PASSWORD}."
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
