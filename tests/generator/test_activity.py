"""Replayed check-ins go through the check-in service and the ledger: balances match, verify passes."""

from __future__ import annotations

from datetime import date

from sqlmodel import Session
from typer.testing import CliRunner

from app.cli import app
from app.generator.activity import replay
from app.generator.plan import plan_street
from app.generator.service import build_street
from tests.conftest import drop_pg_database, fresh_pg_database


def test_replayed_checkins_credit_the_ledger_consistently(client, engine):
    # A fixed seed: the replay is deterministic for it, so the test is too (a random one could draw a
    # month in which nobody redeemed). No other test replays this seed into the shared database.
    seed = 1001
    with Session(engine, expire_on_commit=False) as s:
        built = build_street(s, plan_street(seed, 1, 40))
        c = built.communities[0]
        summary = replay(s, seed=seed, community_id=c.id, staff=c.staff, days=45, today=date(2026, 3, 1))
    assert summary.scans > 40 and 0 < summary.credited < summary.scans and summary.checkin_points == 10 * summary.credited
    assert summary.compost_drops > 0 and summary.bins_closed > 0 and summary.harvests > 0 and summary.compost_collected > 0
    assert summary.redemptions > 0 and summary.recycling_days >= 1 and summary.weigh_ins > 0

    token = client.post("/api/v1/auth/password/login", json={"username": c.staff["committee"][0], "password": "demo-pass-2026"}).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    items, cursor = [], None
    while True:
        page = client.get(
            f"/api/v1/communities/{c.id}/households", params={"limit": 200} | ({"cursor": cursor} if cursor else {}), headers=headers
        ).json()
        items += page["items"]
        if not (cursor := page["next_cursor"]):
            break
    assert len(items) == c.households
    balances = [client.get(f"/api/v1/households/{h['id']}/passbook", headers=headers).json()["balance"] for h in items]
    assert sum(balances) == summary.checkin_points + summary.compost_points + summary.recycling_points - summary.points_spent
    assert sum(1 for b in balances if b == 0) >= 1  # some households never take part

    verify = CliRunner().invoke(app, ["ledger", "verify", "--community", str(c.id)])
    assert verify.exit_code == 0, verify.output


def test_the_same_seed_replays_the_same_days_in_another_database(tmp_path):
    """Deterministic for a seed: two fresh databases, the same street and the same balances per door plate."""
    from sqlalchemy import select

    from app.core.db import make_engine
    from app.core.migrate import upgrade
    from app.ledger import service as ledger
    from app.places.models import Building, Household

    outcomes = []
    for name in ("a", "b"):
        url = fresh_pg_database(f"seed{name}")
        upgrade(url)
        engine = make_engine(url)
        with Session(engine, expire_on_commit=False) as s:
            c = build_street(s, plan_street(4242, 1, 30)).communities[0]
            summary = replay(s, seed=4242, community_id=c.id, staff=c.staff, days=40, today=date(2026, 3, 1))
            rows = s.exec(select(Building.name, Household.unit, Household.door_plate, Household.id).join(Building)).all()
            balances = sorted((b, u, d, ledger.balance_of(s, h)) for b, u, d, h in rows)
        engine.dispose()
        drop_pg_database(url)
        outcomes.append((summary, balances))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0].scans > 0 and any(b for *_, b in outcomes[0][1])
