"""The demo street generator: deterministic plans, and what it builds is usable through the API."""

from __future__ import annotations

import uuid
from collections import Counter

from typer.testing import CliRunner

from app.cli import app
from app.generator.plan import plan_street


def test_the_same_seed_plans_the_same_street():
    a, b, c = plan_street(7, 2, 150), plan_street(7, 2, 150), plan_street(8, 2, 150)
    assert a == b and a != c
    assert len(a.communities) == 2 and len({x.name for x in a.communities}) == 2
    for community in a.communities:
        assert 150 <= community.households < 150 + 250
        for compound in community.compounds:
            for building in compound.buildings:
                keys = Counter((h.unit, h.door_plate) for h in building.households)
                assert max(keys.values()) == 1
    households = [h for x in a.communities for k in x.compounds for b in k.buildings for h in b.households]
    assert len({h.public_code for h in households}) == len(households)
    assert {h.members for h in households} <= set(range(1, 7))
    with_phone = sum(1 for h in households if h.phone) / len(households)
    assert 0.7 < with_phone < 0.95


def test_generate_demo_builds_a_street_staff_can_use(client, engine):
    seed = int(uuid.uuid4().int % 10**9)
    runner = CliRunner()
    r = runner.invoke(app, ["generate-demo", "--seed", str(seed), "--communities", "2", "--households", "60", "--days", "2"])
    assert r.exit_code == 0, r.output
    plan = plan_street(seed, 2, 60)

    login = client.post("/api/v1/auth/password/login", json={"username": f"demo{seed}-c1-committee", "password": "demo-pass-2026"})
    assert login.status_code == 200, login.text
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    communities = client.get("/api/v1/communities", headers=headers).json()["items"]
    assert [c["name"] for c in communities] == [plan.communities[0].name]
    items, cursor = [], None
    while True:
        page = client.get(
            f"/api/v1/communities/{communities[0]['id']}/households",
            params={"limit": 200} | ({"cursor": cursor} if cursor else {}),
            headers=headers,
        ).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    planned = {h.public_code for k in plan.communities[0].compounds for b in k.buildings for h in b.households}
    assert {h["public_code"] for h in items} == planned

    volunteer = client.post("/api/v1/auth/password/login", json={"username": f"demo{seed}-c2-volunteer1", "password": "demo-pass-2026"})
    assert volunteer.status_code == 200
    street = client.post("/api/v1/auth/password/login", json={"username": f"demo{seed}-street", "password": "demo-pass-2026"})
    seen = client.get("/api/v1/communities", headers={"Authorization": f"Bearer {street.json()['access_token']}"}).json()["items"]
    assert {c["name"] for c in seen} == {c.name for c in plan.communities}

    again = runner.invoke(app, ["generate-demo", "--seed", str(seed), "--communities", "1", "--households", "10", "--days", "0"])
    assert again.exit_code == 2 and "already exists" in again.output


def test_the_simulated_clock_is_what_services_see(client, world):
    """Replaying history: inside simulated_clock, rows written through the services carry that time."""
    from datetime import UTC, datetime

    from sqlmodel import Session, select

    from app.audit.models import AuditLog
    from app.core.db import simulated_clock, utcnow
    from app.identity.auth import Grant, Principal
    from app.identity.models import Role
    from app.places import service as places
    from app.places.models import CompoundCreate

    at = datetime(2025, 6, 1, 0, 30, tzinfo=UTC)
    principal = Principal(user_id=world.users["committee"], grants=(Grant(Role.committee, community_id=world.community.id),))
    with Session(world.engine) as s, simulated_clock(at):
        assert utcnow() == at
        compound = places.create_compound(s, principal, world.community.id, CompoundCreate(name="回放小区"))
        entry = s.exec(select(AuditLog).where(AuditLog.action == "compound.create", AuditLog.object_id == str(compound.id))).one()
        assert compound.created_at == at and entry.at == at
    assert utcnow() > at
