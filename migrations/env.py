"""Alembic environment: the URL comes from the caller's config or from the app settings."""

from alembic import context
from sqlalchemy import pool, text
from sqlmodel import create_engine

from app.core.config import get_settings
from app.models import metadata

config = context.config
url = config.get_main_option("sqlalchemy.url") or get_settings().resolved_database_url()


def run_offline() -> None:
    context.configure(url=url, target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is not None:
        _run(connectable)
        return
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        _run(connection)


# Until 2026-12 the revisions 0002 … 0011 hung off 0001 in branches, and a fully migrated database
# recorded these four heads. The graph is one line now (same revisions, same order of dependencies):
# such a database is at 0011.
LEGACY_HEADS = {"0004", "0005", "0007", "0011"}


def _collapse_legacy_heads(connection) -> None:
    if connection.dialect.has_table(connection, "alembic_version"):
        found = {row[0] for row in connection.execute(text("SELECT version_num FROM alembic_version"))}
        if found == LEGACY_HEADS:
            connection.execute(text("DELETE FROM alembic_version WHERE version_num <> '0011'"))
    connection.commit()  # the migrations run in a transaction of their own


def _run(connection) -> None:
    _collapse_legacy_heads(connection)
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
