"""`jianfei ledger verify` and `jianfei ledger expire` against the test database."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text
from typer.testing import CliRunner

from app.cli import app
from app.core.db import utcnow
from tests.ledger.helpers import earn


def test_verify_reports_clean_then_a_tampered_balance(world, engine, client):
    earn(engine, world.households[0], 12)
    runner = CliRunner()
    ok = runner.invoke(app, ["ledger", "verify", "--community", str(world.community.id)])
    assert ok.exit_code == 0, ok.output
    assert "consistent" in ok.output
    with engine.begin() as conn:  # someone edits a balance behind the ledger's back
        conn.execute(text("UPDATE ledger_account SET balance = balance + 5 WHERE household_id = :h"), {"h": world.households[0].id})
    bad = runner.invoke(app, ["ledger", "verify", "--community", str(world.community.id)])
    assert bad.exit_code == 1 and "balance mismatch" in bad.output


def test_expire_command_is_repeatable(world, engine, client):
    client.put(f"/api/v1/communities/{world.community.id}/ledger/policy", json={"expiry_mode": "rolling", "expiry_months": 1}, headers=world.h("committee"))
    earn(engine, world.households[1], 4, when=utcnow() - timedelta(days=80))
    runner = CliRunner()
    first = runner.invoke(app, ["ledger", "expire", "--community", str(world.community.id)])
    assert first.exit_code == 0 and "Expired 4 points in 1 households" in first.output, first.output
    again = runner.invoke(app, ["ledger", "expire", "--community", str(world.community.id)])
    assert "Expired 0 points" in again.output
