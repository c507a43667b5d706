"""Health, readiness, metrics and request logs."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import text

from app.core.db import set_engine


def test_healthz_and_readyz(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["migrations"] is True


def test_readyz_fails_when_migrations_lag(client):
    from app.core.db import make_engine
    from app.core.migrate import upgrade
    from tests.conftest import drop_pg_database, fresh_pg_database

    url = fresh_pg_database("lag")
    upgrade(url, "0001")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'stale'"))
    set_engine(engine)
    try:
        r = client.get("/readyz")
        assert r.status_code == 503 and r.json()["migrations"] is False
    finally:
        engine.dispose()
        drop_pg_database(url)


def test_metrics_count_requests_by_route_template(client, world):
    client.get(f"/api/v1/households/{world.households[0].id}", headers=world.h("committee"))
    body = client.get("/metrics").text
    assert 'route="/api/v1/households/{household_id}"' in body
    assert "http_request_duration_seconds_bucket" in body


def test_request_id_is_echoed_and_logged_without_secrets(client, world, caplog):
    rid = uuid.uuid4().hex
    phone = world.phones[world.households[0].id]
    with caplog.at_level(logging.INFO, logger="app.request"):
        r = client.patch(
            f"/api/v1/households/{world.households[0].id}?phone={phone}",
            json={"phone": phone},
            headers=world.h("committee", **{"X-Request-ID": rid}),
        )
    assert r.status_code == 200
    assert r.headers["x-request-id"] == rid
    records = [rec for rec in caplog.records if getattr(rec, "request_id", None) == rid]
    assert records and records[0].route == "/api/v1/households/{household_id}" and records[0].status == 200
    from app.kit.observability import JsonFormatter

    line = JsonFormatter().format(records[0])
    assert phone not in line and world.tokens["committee"] not in line and rid in line
    assert phone not in caplog.text and world.tokens["committee"] not in caplog.text
    audit = client.get(f"/api/v1/communities/{world.community.id}/audit", headers=world.h("committee")).json()["items"]
    assert any(a["request_id"] == rid and a["action"] == "household.update" for a in audit)


def test_unknown_route_uses_the_error_shape(client):
    r = client.get("/api/v1/nowhere")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
