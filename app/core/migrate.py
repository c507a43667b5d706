"""Alembic, driven from code: upgrade on start-up, and the 'at head' check behind /readyz."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "heads") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


def script_heads() -> set[str]:
    """The heads a fully migrated database records. A branch head that another revision names in
    `depends_on` is absorbed by it in alembic_version, so it is not expected there."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    needed: set[str] = set()
    for rev in script.walk_revisions():
        deps = rev.dependencies or ()
        needed.update((deps,) if isinstance(deps, str) else deps)
    return set(script.get_heads()) - needed


def database_heads(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads())


def at_head(engine: Engine) -> bool:
    return database_heads(engine) == script_heads()
