"""Alembic: empty → head → base, one head, and the models match the migrations."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from app.core.db import make_engine
from app.core.migrate import downgrade, script_heads, upgrade
from app.models import metadata
from tests.conftest import drop_pg_database, fresh_pg_database


def test_upgrade_downgrade_and_no_drift():
    url = fresh_pg_database("mig")
    engine = make_engine(url)
    try:
        upgrade(url)
        tables = set(inspect(engine).get_table_names())
        assert set(metadata.tables) <= tables
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            assert set(ctx.get_current_heads()) == script_heads()
            diff = compare_metadata(ctx, metadata)
        assert diff == [], f"models and migrations differ: {diff}"
        downgrade(url, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade(url)  # and back up again: downgrades leave nothing behind that blocks a re-run
    finally:
        engine.dispose()
        drop_pg_database(url)


def test_a_database_migrated_on_the_old_branches_upgrades_to_head():
    """Before the graph was one line, a fully migrated database recorded four heads (0004, 0005, 0007,
    0011); `upgrade` takes it to the one head without re-running anything."""
    url = fresh_pg_database("legacy")
    engine = make_engine(url)
    try:
        upgrade(url, "0011")
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO alembic_version VALUES ('0004'), ('0005'), ('0007')"))
        upgrade(url)
        with engine.connect() as conn:
            assert set(MigrationContext.configure(conn).get_current_heads()) == script_heads()
    finally:
        engine.dispose()
        drop_pg_database(url)
