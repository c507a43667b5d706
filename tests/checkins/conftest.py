"""Fixtures of the check-in tests."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.checkins.fastpath import CheckinFastPath


@pytest.fixture
def route_only(client):
    """The application without the scan route's lean twin: every scan reaches the FastAPI route."""
    from app.main import create_app

    app = create_app()
    app.user_middleware = [m for m in app.user_middleware if m.cls is not CheckinFastPath]
    with TestClient(app) as c:
        yield c
