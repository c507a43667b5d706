"""Alembic: empty → head → base on both databases, and the models match the migrations."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from app.core.db import make_engine
from app.core.migrate import downgrade, script_heads, upgrade
from app.models import metadata
from tests.conftest import drop_pg_database, fresh_database


def test_upgrade_downgrade_and_no_drift(backend):
    url = fresh_database(backend, "mig")
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
        if backend == "postgresql":
            drop_pg_database(url)
