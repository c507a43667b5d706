"""What the console's browser tests share (main's tests/conftest.py now has the same live_server: after
the merge, drop it here and in tests/console/conftest.py): a live server on a free port (the app in a thread, on the test's
database), Debian's Chromium through Playwright (no browser download), staff who sign in with a password."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from pathlib import Path

import pytest
import uvicorn
from sqlmodel import Session

from app.core.security import hash_password
from app.identity.models import Role, RoleGrant, User

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
PASSWORD = "console-pass-2026"


@pytest.fixture
def live_server(engine):
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
def chromium():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: scripts/test.sh installs it (apt-get install -y chromium)", pytrace=False)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


def staff_with_password(engine, role: Role, community_id: int | None, name: str = "staff", *more: dict) -> str:
    """A staff member holding `role` in the community (none without one) and the further grants `more`
    (each a RoleGrant's fields), who signs in with PASSWORD; their username."""
    username = f"{name}-{uuid.uuid4().hex[:8]}"
    with Session(engine) as s:
        user = User(username=username, display_name=name, password_hash=hash_password(PASSWORD))
        s.add(user)
        s.flush()
        if community_id is not None:
            s.add(RoleGrant(user_id=user.id, role=role, community_id=community_id))
        s.add_all(RoleGrant(user_id=user.id, **grant) for grant in more)
        s.commit()
    return username
