"""The embedded PostgreSQL (app.core.embedded) for real, in a temporary data folder: started, used,
stopped, started again after its postmaster was killed; and the `jianfei` command's on-demand scope."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from app.core.embedded import EmbeddedPostgres, database_url, on_demand


@pytest.fixture
def data_dir():
    """A folder of its own in /tmp, not under pytest's tmp_path: as root the server runs as jianfei-pg,
    which must pass through the folders above it, and every pytest run resets /tmp/pytest-of-root to 0700."""
    path = Path(tempfile.mkdtemp(prefix="jianfei-embedded-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_start_use_stop_and_start_again_after_a_kill(data_dir):
    server = EmbeddedPostgres(data_dir, {"fsync": "off"})
    assert server.port() is None
    try:
        assert server.start() is True
        assert server.start() is False  # running: used as it is
        with psycopg.connect(server.url()) as conn:
            assert conn.execute("SELECT current_database(), inet_server_addr()::text").fetchone() == ("jianfei", "127.0.0.1/32")
            conn.execute("CREATE TABLE kept (n int)")
            conn.execute("INSERT INTO kept VALUES (7)")

        pid_file = server.pgdata / "postmaster.pid"
        os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
        deadline = time.monotonic() + 5
        while server.port() is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.port() is None and pid_file.exists()  # the stale pid file a killed run leaves

        assert server.start() is True
        with psycopg.connect(server.url()) as conn:
            assert conn.execute("SELECT n FROM kept").fetchone() == (7,)  # recovered from the WAL
        server.stop()
        assert server.port() is None and not pid_file.exists()
    finally:
        server.stop()


def test_the_command_starts_it_on_demand_and_stops_it_when_done(data_dir):
    with pytest.raises(RuntimeError, match="not running"):
        database_url(data_dir)  # outside a `jianfei` command nothing starts it
    with on_demand():
        url = database_url(data_dir)
        assert database_url(data_dir) == url
        psycopg.connect(url).close()
    assert EmbeddedPostgres(data_dir).port() is None
