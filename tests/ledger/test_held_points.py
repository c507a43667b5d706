"""Held points on the household's account row: verified against the `held` account's postings."""

from __future__ import annotations

from sqlalchemy import text

from tests.ledger.helpers import earn
from tests.rewards.helpers import add_item, reserve


def test_verify_reports_held_points_that_disagree_with_the_postings(client, world, engine):
    h = world.households[0]
    earn(engine, h, 50)
    bag = add_item(world, price_points=20, stock=None)
    assert reserve(world, bag["id"]).status_code == 201
    url = f"/api/v1/communities/{world.community.id}/ledger/verify"
    assert client.get(url, headers=world.h("committee")).json()["balance_mismatches"] == []
    passbook = client.get(f"/api/v1/households/{h.id}/passbook", headers=world.h("resident")).json()
    assert (passbook["balance"], passbook["held_points"]) == (30, 20)
    with engine.begin() as conn:  # a row changed behind the ledger's back
        conn.execute(text("UPDATE ledger_account SET held = held + 5 WHERE household_id = :h"), {"h": h.id})
    report = client.get(url, headers=world.h("committee")).json()
    assert report["balance_mismatches"] == [{"household_id": h.id, "held": 25, "held_from_postings": 20}]
