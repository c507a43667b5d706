"""What production exposes and refuses: security headers on every answer, /docs served offline (off in
production unless asked for), /metrics behind a token, and no start with development WeChat settings."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.core.config import get_settings
from tests.support import PRODUCTION_WECHAT

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings_env(monkeypatch):
    """Set environment variables for the settings, read afresh; restored afterwards."""
    def use(**values: str):
        for k, v in values.items():
            monkeypatch.setenv(k, v)
        get_settings.cache_clear()
    yield use
    monkeypatch.undo()
    get_settings.cache_clear()


def test_every_answer_carries_the_security_headers(client, world):
    for r in (client.get("/healthz"), client.get("/api/v1/me", headers=world.h("committee")), client.get("/api/v1/me")):
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"


def test_the_dashboard_page_admits_only_its_own_scripts(client):
    r = client.get("/reports/dashboard")
    policy = r.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe-inline'" not in policy.split("style-src")[0]
    inline = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", r.text, re.S)
    assert inline, "the page has an inline script to admit"
    for body in inline:
        assert f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'" in policy


def test_docs_are_served_by_the_service_itself(client):
    page = client.get("/docs")
    assert page.status_code == 200 and "/docs/assets/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower() and "http://" not in page.text and "https://" not in page.text
    js = client.get("/docs/assets/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 100_000
    assert client.get("/openapi.json").status_code == 200


def test_metrics_want_their_token_when_one_is_set_and_are_off_in_production_without(client, settings_env):
    assert client.get("/metrics").status_code == 200  # development: open
    settings_env(METRICS_TOKEN="scrape-" + "k" * 20)
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    r = client.get("/metrics", headers={"Authorization": "Bearer scrape-" + "k" * 20})
    assert r.status_code == 200 and "http_requests" in r.text or "request" in r.text
    settings_env(METRICS_TOKEN="", ENVIRONMENT="production", **PRODUCTION_WECHAT)
    assert client.get("/metrics").status_code == 404


def test_docs_are_off_in_production_unless_asked_for(settings_env, fake_wechat):
    from app.main import create_app

    settings_env(ENVIRONMENT="production", **PRODUCTION_WECHAT)
    with TestClient(create_app()) as c:
        assert c.get("/docs").status_code == 404
    settings_env(API_DOCS="true")
    with TestClient(create_app()) as c:
        assert c.get("/docs").status_code == 200


def test_production_refuses_to_start_with_the_development_wechat_settings(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WECHAT_")}
    env |= {"ENVIRONMENT": "production", "DATA_DIR": str(tmp_path), "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
            "JWT_SECRET": "s" * 40, "PHONE_HASH_KEY": "k" * 20}
    r = subprocess.run([sys.executable, "-m", "app.cli", "serve", "--port", "1"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "WECHAT_APP_ID, WECHAT_APP_SECRET and WECHAT_API_BASE must be set" in (r.stderr + r.stdout)
    env |= PRODUCTION_WECHAT | {"WECHAT_API_BASE": "http://127.0.0.1:8765"}  # the fake server's address alone is refused too
    r = subprocess.run([sys.executable, "-m", "app.cli", "serve", "--port", "1"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "WECHAT_API_BASE must be set" in (r.stderr + r.stdout)
