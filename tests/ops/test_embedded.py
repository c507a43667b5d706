"""The embedded PostgreSQL (app.core.embedded) for real, in a temporary data folder: started, used,
stopped, started again after its postmaster was killed; and the `jianfei` command's on-demand scope."""

from __future__ import annotations

import os
import signal
import time

import psycopg
import pytest

from app.core.embedded import EmbeddedPostgres, database_url, on_demand


def test_start_use_stop_and_start_again_after_a_kill(tmp_path):
    server = EmbeddedPostgres(tmp_path / "data")
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


def test_the_command_starts_it_on_demand_and_stops_it_when_done(tmp_path):
    with pytest.raises(RuntimeError, match="not running"):
        database_url(tmp_path)  # outside a `jianfei` command nothing starts it
    with on_demand():
        url = database_url(tmp_path)
        assert database_url(tmp_path) == url
        psycopg.connect(url).close()
    assert EmbeddedPostgres(tmp_path).port() is None
