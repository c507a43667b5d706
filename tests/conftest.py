"""Test harness: every API test runs on PostgreSQL through the HTTP API.

PostgreSQL comes from TEST_DATABASE_URL (the test command sets it: a local server, else the embedded
one it starts). Without it the run fails: nothing is skipped silently.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

_TMP = Path(tempfile.mkdtemp(prefix="jianfei-test-"))
os.environ.setdefault("ENVIRONMENT", "test")
os.environ["DATA_DIR"] = str(_TMP)
os.environ.setdefault("JWT_SECRET", "test-secret-" + "x" * 40)
os.environ.setdefault("PHONE_HASH_KEY", "test-phone-key")
os.environ.setdefault("LOG_LEVEL", "WARNING")
# Code that reaches for the configured database outside the `engine` fixture finds the test server,
# never an embedded one of its own.
os.environ["DATABASE_URL"] = os.environ.get("TEST_DATABASE_URL", "")
os.environ.setdefault("JOBS_IN_SERVICE", "false")  # tests/jobs start the scheduler where they mean to

import pytest  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from tests.support import World  # noqa: E402

pytest_plugins = ["tests.clock"]  # the `clock` fixture and JIANFEI_TEST_START


def pg_admin_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL", "")
    if not url:
        pytest.fail(
            "TEST_DATABASE_URL is not set: run the suite with `make test` (it finds or starts PostgreSQL)",
            pytrace=False,
        )
    return url.replace("postgresql://", "postgresql+psycopg://", 1) if url.startswith("postgresql://") else url


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def fresh_pg_database(tag: str) -> str:
    """Create an empty database for this worker on the test server; returns its URL."""
    admin = create_engine(pg_admin_url(), isolation_level="AUTOCOMMIT")
    name = f"jf_{tag}_{_worker()}_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    base = pg_admin_url().rsplit("/", 1)[0]
    return f"{base}/{name}"


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = create_engine(pg_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def fake_wechat():
    from app.wechat.fake import FakeWechatServer

    server = FakeWechatServer().start()
    os.environ["WECHAT_API_BASE"] = server.url
    from app.core.config import get_settings
    from app.wechat.client import reset_wechat

    get_settings.cache_clear()
    reset_wechat()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def migrated_engine(fake_wechat):
    """One migrated database per worker, shared by the tests (each builds its own world)."""
    from app.core.db import make_engine
    from app.core.migrate import upgrade

    url = fresh_pg_database("api")
    upgrade(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()
    drop_pg_database(url)


@pytest.fixture
def engine(migrated_engine):
    from app.core.db import set_engine

    set_engine(migrated_engine)
    with migrated_engine.begin() as conn:  # every TestClient signs in from one address: no test inherits another's failures
        conn.execute(text("DELETE FROM throttle"))
    yield migrated_engine


@pytest.fixture
def client(engine, fake_wechat, contract_codes):
    from app.main import app

    with TestClient(app) as c:
        yield c


@pytest.fixture
def contract_codes(monkeypatch):
    """Every error a test's requests are answered with must be one its operation lists in the contract
    (`x-error-codes`, read from the code by app.kit.contract): the suite's ~500 tests check the list."""
    from app.checkins import fastpath
    from app.kit import contract, errors, guard

    seen: list[tuple[str, str]] = []
    answer = errors.error_response

    def recording(request, status, code, *args, **kwargs):
        route = request.scope.get("route")
        if hasattr(route, "endpoint"):
            seen.append((route, code))
        return answer(request, status, code, *args, **kwargs)

    monkeypatch.setattr(errors, "error_response", recording)
    monkeypatch.setattr(guard, "error_response", recording)
    monkeypatch.setattr(fastpath, "error_response", recording)
    yield
    missing = sorted({(route.name, code) for route, code in seen if code not in contract.route_codes(route)})
    assert not missing, f"answered with codes the contract does not list for the operation: {missing}"


@pytest.fixture
def live_server(engine):
    """The app served over real HTTP on a free loopback port (a browser or a Node program as client),
    in this process: the `clock` fixture's time holds there too."""
    import socket
    import threading
    import time

    import uvicorn

    from app.main import app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def world(client, engine) -> World:
    """A fresh street with a community, compound, buildings, households and staff of every role."""
    return World.build(client, engine)


@pytest.fixture
def other_world(client, engine) -> World:
    """A second, unrelated community: its staff must get nothing in `world`."""
    return World.build(client, engine)


@pytest.fixture
def wechat_state(fake_wechat):
    state = fake_wechat.app.state.fake
    state.reset()
    return state
