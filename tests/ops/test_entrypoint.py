"""The Docker entry script (migrate, then granian with workers) run as a real process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import drop_pg_database, fresh_pg_database
from tests.support import PRODUCTION_WECHAT

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_entrypoint_migrates_and_serves_with_workers(tmp_path):
    url = fresh_pg_database("entry")
    port = _free_port()
    env = os.environ | {
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "DATABASE_URL": url,
        "ENVIRONMENT": "production",
        **PRODUCTION_WECHAT,
        "JWT_SECRET": "entrypoint-secret-" + "z" * 32,
        "PHONE_HASH_KEY": "entrypoint-phone-key",
        "DATA_DIR": str(tmp_path),
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.Popen([str(ROOT / "scripts" / "docker-entrypoint.sh")], cwd=tmp_path, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code
                if status == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        assert status == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
        drop_pg_database(url)


def test_production_refuses_to_start_without_secrets(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("JWT_SECRET", "PHONE_HASH_KEY")}
    env |= {"ENVIRONMENT": "production", "DATA_DIR": str(tmp_path), "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    r = subprocess.run([sys.executable, "-m", "app.cli", "serve", "--port", "1"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "JWT_SECRET must be set" in (r.stderr + r.stdout)
