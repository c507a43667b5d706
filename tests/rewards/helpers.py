"""Shared steps for rewards tests, all through the HTTP API."""

from __future__ import annotations

import uuid

from sqlmodel import Session

from app.ledger import service as ledger


def add_item(world, **fields) -> dict:
    body = {"name": "环保袋", "price_points": 10, "stock": 5} | fields
    r = world.client.post(f"/api/v1/communities/{world.community.id}/rewards", json=body, headers=world.h("committee"))
    assert r.status_code == 201, r.text
    return r.json()


def reserve(world, item_id: int, quantity: int = 1, key: str | None = None, household=None, who: str = "resident"):
    household = household or world.households[0]
    return world.client.post(
        f"/api/v1/households/{household.id}/redemptions",
        json={"item_id": item_id, "quantity": quantity, "idempotency_key": key or uuid.uuid4().hex},
        headers=world.h(who),
    )


def consent_code(world, household=None) -> str:
    household = household or world.households[0]
    r = world.client.post(f"/api/v1/households/{household.id}/consent-codes", headers=world.h("resident"))
    assert r.status_code == 201, r.text
    return r.json()["code"]


def item(world, item_id: int) -> dict:
    return world.client.get(f"/api/v1/rewards/{item_id}", headers=world.h("clerk")).json()


def balance(engine, household) -> int:
    with Session(engine) as s:
        return ledger.balance_of(s, household.id)
