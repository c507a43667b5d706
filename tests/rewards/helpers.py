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


def reset_pin(world, household, pin: str, by: str = "committee", **extra):
    """A staff member's PIN reset for the household (pending until confirmed, unless a consent code is given)."""
    body = {"pin": pin, "idempotency_key": uuid.uuid4().hex} | extra
    return world.client.post(f"/api/v1/households/{household.id}/pin-resets", json=body, headers=world.h(by))


def confirm_reset(world, reset_id: int, by: str = "clerk"):
    return world.client.post(f"/api/v1/pin-resets/{reset_id}/confirm", headers=world.h(by))


def staff_pin(world, household, pin: str, by: str = "committee", confirmed_by: str = "clerk") -> None:
    """Give a household without a phone a PIN the way the desk does: `by` resets it with the
    resident, `confirmed_by` confirms in person. `by` may not spend with it afterwards."""
    r = reset_pin(world, household, pin, by=by)
    assert r.status_code == 201 and r.json()["status"] == "pending", r.text
    r = confirm_reset(world, r.json()["id"], by=confirmed_by)
    assert r.status_code == 200 and r.json()["status"] == "confirmed", r.text


def counter(world, body: dict, who: str = "clerk"):
    body = {"idempotency_key": uuid.uuid4().hex} | body
    return world.client.post(f"/api/v1/communities/{world.community.id}/counter-redemptions", json=body, headers=world.h(who))
