"""Reserve, fulfil, cancel, lapse: points and stock are held like a card hold and released exactly once."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import update
from sqlmodel import Session

from app.core.db import utcnow
from app.rewards.models import Redemption
from tests.ledger.helpers import earn, verify_clean
from tests.rewards.helpers import add_item, balance, consent_code, item, reserve


def _statement(world, household):
    return world.client.get(f"/api/v1/households/{household.id}/statement", headers=world.h("resident")).json()["items"]


def test_reserve_then_fulfil_with_the_residents_code(client, world, engine):
    h = world.households[0]
    earn(engine, h, 100)
    bag = add_item(world, name="环保袋", price_points=30, stock=5)
    r = reserve(world, bag["id"], quantity=2)
    assert r.status_code == 201, r.text
    red = r.json()
    assert (red["status"], red["points"], red["balance_after"]) == ("held", 60, 40)
    assert balance(engine, h) == 40 and item(world, bag["id"])["stock"] == 3
    assert _statement(world, h)[0]["points_out"] == 60 and "环保袋" in _statement(world, h)[0]["memo"]

    held = client.get(f"/api/v1/communities/{world.community.id}/redemptions", params={"status": "held"}, headers=world.h("clerk")).json()["items"]
    assert [x["id"] for x in held] == [red["id"]]

    # The door-plate code alone is not consent; nor is nothing.
    r = client.post(f"/api/v1/redemptions/{red['id']}/fulfil", json={}, headers=world.h("clerk"))
    assert r.status_code == 403 and r.json()["error"]["code"] == "consent_required"
    code = consent_code(world)
    r = client.post(f"/api/v1/redemptions/{red['id']}/fulfil", json={"consent_code": code}, headers=world.h("clerk"))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "fulfilled" and r.json()["consent"] == "code"
    # A retry of the same fulfilment changes nothing and answers the same.
    again = client.post(f"/api/v1/redemptions/{red['id']}/fulfil", json={"consent_code": code}, headers=world.h("clerk"))
    assert again.status_code == 200 and again.json()["replayed"] and again.json()["status"] == "fulfilled"
    assert balance(engine, h) == 40 and item(world, bag["id"])["stock"] == 3
    # Once fulfilled it cannot be cancelled.
    r = client.post(f"/api/v1/redemptions/{red['id']}/cancel", json={}, headers=world.h("resident"))
    assert r.status_code == 409 and r.json()["error"]["code"] == "redemption_not_held"
    verify_clean(engine, world.community.id)


def test_a_code_is_single_use_and_belongs_to_its_household(client, world, engine):
    h0, h1 = world.households[0], world.households[1]
    earn(engine, h0, 100)
    earn(engine, h1, 100)
    bag = add_item(world, price_points=10, stock=None)
    a = reserve(world, bag["id"]).json()
    b = reserve(world, bag["id"]).json()
    code = consent_code(world)
    assert client.post(f"/api/v1/redemptions/{a['id']}/fulfil", json={"consent_code": code}, headers=world.h("clerk")).status_code == 200
    r = client.post(f"/api/v1/redemptions/{b['id']}/fulfil", json={"consent_code": code}, headers=world.h("clerk"))
    assert r.status_code == 409 and r.json()["error"]["code"] == "consent_code_used"
    forged = code[:-3] + ("AAA" if not code.endswith("AAA") else "BBB")
    r = client.post(f"/api/v1/redemptions/{b['id']}/fulfil", json={"consent_code": forged}, headers=world.h("clerk"))
    assert r.status_code == 403 and r.json()["error"]["code"] == "invalid_consent_code"
    # Another household's redemption cannot be fulfilled with this household's code.
    with Session(engine) as s:
        from app.places.models import Household
        from app.rewards import service

        hh = s.get(Household, h1.id)
        other, _, _ = service.reserve(s, hh, bag["id"], 1, uuid.uuid4().hex, actor_user_id=None)
        s.commit()
        other_id = other.id
    r = client.post(f"/api/v1/redemptions/{other_id}/fulfil", json={"consent_code": consent_code(world)}, headers=world.h("clerk"))
    assert r.status_code == 403 and r.json()["error"]["code"] == "consent_code_other_household"
    # Expired codes are refused.
    from app.rewards import consent

    old = consent.issue_code(h0.id, now=utcnow() - timedelta(minutes=5)).code
    r = client.post(f"/api/v1/redemptions/{b['id']}/fulfil", json={"consent_code": old}, headers=world.h("clerk"))
    assert r.status_code == 403 and r.json()["error"]["code"] == "consent_code_expired"
    verify_clean(engine, world.community.id)


def test_cancel_releases_points_stock_and_limit(client, world, engine):
    h = world.households[0]
    earn(engine, h, 100)
    bag = add_item(world, price_points=20, stock=3, limit_per_household=1, limit_period="month")
    first = reserve(world, bag["id"]).json()
    r = reserve(world, bag["id"])
    assert r.status_code == 409 and r.json()["error"]["code"] == "limit_reached"
    assert "上限" in r.json()["error"]["message"]
    assert balance(engine, h) == 80 and item(world, bag["id"])["stock"] == 2

    r = client.post(f"/api/v1/redemptions/{first['id']}/cancel", json={"reason": "不需要了"}, headers=world.h("resident"))
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert balance(engine, h) == 100 and item(world, bag["id"])["stock"] == 3
    again = client.post(f"/api/v1/redemptions/{first['id']}/cancel", json={}, headers=world.h("resident"))
    assert again.status_code == 200 and again.json()["replayed"]
    assert balance(engine, h) == 100 and item(world, bag["id"])["stock"] == 3
    lines = _statement(world, h)
    assert lines[0]["points_in"] == 20 and lines[0]["reverses_entry_id"] is not None

    # The limit is free again; a clerk can cancel too.
    second = reserve(world, bag["id"])
    assert second.status_code == 201, second.text
    r = client.post(f"/api/v1/redemptions/{second.json()['id']}/cancel", json={}, headers=world.h("clerk"))
    assert r.status_code == 200 and r.json()["reason"] == "兑换员取消"
    assert client.post(f"/api/v1/redemptions/{second.json()['id']}/cancel", json={}, headers=world.h("volunteer")).status_code in (200, 403)
    verify_clean(engine, world.community.id)


def test_refusals_hold_nothing(client, world, engine):
    h = world.households[0]
    earn(engine, h, 25)
    pricey = add_item(world, price_points=30, stock=2)
    r = reserve(world, pricey["id"])
    assert r.status_code == 409 and r.json()["error"]["code"] == "insufficient_points"
    assert item(world, pricey["id"])["stock"] == 2 and balance(engine, h) == 25
    cheap = add_item(world, price_points=5, stock=1)
    r = reserve(world, cheap["id"], quantity=2)
    assert r.status_code == 409 and r.json()["error"]["code"] == "out_of_stock"
    assert balance(engine, h) == 25 and item(world, cheap["id"])["stock"] == 1
    # Someone else's household, and an item of another community, are refused.
    assert reserve(world, cheap["id"], household=world.households[1]).status_code == 404
    with Session(engine) as s:
        assert s.query(Redemption).filter(Redemption.household_id == h.id).count() == 0
    verify_clean(engine, world.community.id)


def test_same_key_returns_the_first_reservation(client, world, engine):
    h = world.households[0]
    earn(engine, h, 100)
    bag = add_item(world, price_points=10, stock=5)
    key = uuid.uuid4().hex
    first = reserve(world, bag["id"], key=key)
    second = reserve(world, bag["id"], key=key)
    assert first.status_code == second.status_code == 201
    assert second.json()["id"] == first.json()["id"] and second.json()["replayed"] and not first.json()["replayed"]
    assert second.json()["balance_after"] == 90
    assert balance(engine, h) == 90 and item(world, bag["id"])["stock"] == 4


def test_lapse_releases_what_was_not_collected(client, world, engine):
    h = world.households[0]
    earn(engine, h, 100)
    bag = add_item(world, price_points=15, stock=4, limit_per_household=1, limit_period="week")
    stale = reserve(world, bag["id"]).json()
    other = add_item(world, price_points=5, stock=None)
    fresh = reserve(world, other["id"]).json()
    with Session(engine) as s:
        s.execute(update(Redemption).where(Redemption.id == stale["id"]).values(expires_at=utcnow() - timedelta(minutes=1)))
        s.commit()
    # Past its time it can no longer be handed over.
    r = client.post(f"/api/v1/redemptions/{stale['id']}/fulfil", json={"consent_code": consent_code(world)}, headers=world.h("clerk"))
    assert r.status_code == 409
    r = client.post(f"/api/v1/communities/{world.community.id}/redemptions/lapse-runs", headers=world.h("committee"))
    assert r.status_code == 200, r.text
    assert r.json() == {"lapsed": 1, "points_released": 15}
    assert client.post(f"/api/v1/communities/{world.community.id}/redemptions/lapse-runs", headers=world.h("committee")).json()["lapsed"] == 0
    assert balance(engine, h) == 95 and item(world, bag["id"])["stock"] == 4
    got = client.get(f"/api/v1/redemptions/{stale['id']}", headers=world.h("resident")).json()
    assert got["status"] == "lapsed"
    assert client.get(f"/api/v1/redemptions/{fresh['id']}", headers=world.h("resident")).json()["status"] == "held"
    assert reserve(world, bag["id"]).status_code == 201  # the weekly limit came back
    verify_clean(engine, world.community.id)


def test_lapse_command_line(client, world, engine, monkeypatch):
    from typer.testing import CliRunner

    from app.cli import app as cli

    h = world.households[0]
    earn(engine, h, 50)
    bag = add_item(world, price_points=50, stock=1)
    red = reserve(world, bag["id"]).json()
    with Session(engine) as s:
        s.execute(update(Redemption).where(Redemption.id == red["id"]).values(expires_at=utcnow() - timedelta(hours=1)))
        s.commit()
    monkeypatch.setattr("app.core.db._engine", engine)
    out = CliRunner().invoke(cli, ["rewards", "lapse", "--community", str(world.community.id)])
    assert out.exit_code == 0, out.output
    assert "Released 1 reservations, 50 points" in out.output
    assert balance(engine, h) == 50 and item(world, bag["id"])["stock"] == 1
    verify_clean(engine, world.community.id)
