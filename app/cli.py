"""The `jianfei` command line: serve, migrate, create the platform admin, run the fake WeChat server."""

from __future__ import annotations

import os
import time

import typer
from rich.console import Console

app = typer.Typer(help="减废存折 service: operator commands.", no_args_is_help=True, add_completion=False)
console = Console()


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
    with Session(get_engine()) as session:
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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
