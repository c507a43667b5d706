"""Consent at the counter: the resident's code or PIN, never the door plate alone; wrong PINs lock."""

from __future__ import annotations

import uuid

from tests.ledger.helpers import earn, verify_clean
from tests.rewards.helpers import add_item, balance, consent_code, item, reserve


def _door_plate(world, household) -> str:
    from sqlmodel import Session

    from app.places.service import qr_payload

    with Session(world.engine) as s:
        return qr_payload(s.merge(household))


def _counter(world, body, who="clerk"):
    body = {"idempotency_key": uuid.uuid4().hex} | body
    return world.client.post(f"/api/v1/communities/{world.community.id}/counter-redemptions", json=body, headers=world.h(who))


def test_spend_at_the_counter_with_the_residents_code(client, world, engine):
    h = world.households[0]
    earn(engine, h, 100)
    bag = add_item(world, name="环保袋", price_points=10, stock=5)
    soap = add_item(world, name="肥皂", price_points=7, stock=None)
    # Door plate alone: refused, nothing spent.
    r = _counter(world, {"household_id": h.id, "items": [{"item_id": bag["id"]}]})
    assert r.status_code == 403 and r.json()["error"]["code"] == "consent_required"
    assert client.post("/api/v1/households/0/consent-codes", headers=world.h("resident")).status_code == 404
    key = uuid.uuid4().hex
    body = {"idempotency_key": key, "consent_code": consent_code(world), "items": [{"item_id": bag["id"], "quantity": 2}, {"item_id": soap["id"]}]}
    r = _counter(world, body)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["household_id"] == h.id and out["points"] == 27
    assert [x["status"] for x in out["redemptions"]] == ["fulfilled", "fulfilled"]
    assert balance(engine, h) == 73 and item(world, bag["id"])["stock"] == 3
    # The clerk's phone retries: same answer, nothing more spent (the used code is not checked again).
    again = _counter(world, body)
    assert again.status_code == 201 and again.json()["replayed"] and again.json()["points"] == 27
    assert balance(engine, h) == 73 and item(world, bag["id"])["stock"] == 3
    # A volunteer or a compost keeper is not an exchange clerk.
    assert _counter(world, {"consent_code": consent_code(world), "items": [{"item_id": soap["id"]}]}, who="volunteer").status_code == 403
    verify_clean(engine, world.community.id)


def test_counter_refusal_spends_nothing_and_keeps_the_code(client, world, engine):
    h = world.households[0]
    earn(engine, h, 15)
    bag = add_item(world, price_points=10, stock=5)
    code = consent_code(world)
    r = _counter(world, {"consent_code": code, "items": [{"item_id": bag["id"]}, {"item_id": bag["id"]}]})
    assert r.status_code == 409 and r.json()["error"]["code"] == "insufficient_points"
    assert balance(engine, h) == 15 and item(world, bag["id"])["stock"] == 5
    r = _counter(world, {"consent_code": code, "items": [{"item_id": bag["id"]}]})
    assert r.status_code == 201, r.text
    assert balance(engine, h) == 5
    verify_clean(engine, world.community.id)


def test_pin_for_residents_without_a_phone(client, world, engine):
    h = world.households[2]  # no member has signed in to this one
    earn(engine, h, 100)
    bag = add_item(world, price_points=10, stock=None)
    no_pin = _counter(world, {"household_id": h.id, "pin": "1234", "items": [{"item_id": bag["id"]}]})
    assert no_pin.status_code == 403 and no_pin.json()["error"]["code"] == "no_pin"
    # A clerk cannot set a PIN (or they could spend with it); the committee can, in person.
    assert client.put(f"/api/v1/households/{h.id}/pin", json={"pin": "2580"}, headers=world.h("clerk")).status_code == 403
    assert client.put(f"/api/v1/households/{h.id}/pin", json={"pin": "12ab"}, headers=world.h("committee")).json()["error"]["code"] == "invalid_pin"
    assert client.put(f"/api/v1/households/{h.id}/pin", json={"pin": "2580"}, headers=world.h("committee")).status_code == 204
    r = _counter(world, {"household_id": h.id, "pin": "2580", "items": [{"item_id": bag["id"]}]})
    assert r.status_code == 201, r.text
    assert r.json()["redemptions"][0]["consent"] == "pin"
    assert balance(engine, h) == 90
    verify_clean(engine, world.community.id)


def test_wrong_pins_lock_the_household_for_a_while(client, world, engine):
    from sqlalchemy import update
    from sqlmodel import Session

    from app.core.db import utcnow
    from app.rewards.models import PinGuard

    h = world.households[3]
    earn(engine, h, 100)
    bag = add_item(world, price_points=10, stock=None)
    assert client.put(f"/api/v1/households/{h.id}/pin", json={"pin": "864209"}, headers=world.h("committee")).status_code == 204
    for left in (4, 3, 2, 1):
        r = _counter(world, {"household_id": h.id, "pin": "000000", "items": [{"item_id": bag["id"]}]})
        assert r.status_code == 403 and r.json()["error"]["code"] == "wrong_pin", r.text
        assert r.json()["error"]["attempts_left"] == left
    r = _counter(world, {"household_id": h.id, "pin": "000000", "items": [{"item_id": bag["id"]}]})
    assert r.status_code == 429 and r.json()["error"]["code"] == "pin_locked"
    # Locked: even the right PIN is refused now.
    r = _counter(world, {"household_id": h.id, "pin": "864209", "items": [{"item_id": bag["id"]}]})
    assert r.status_code == 429
    assert balance(engine, h) == 100
    with Session(engine) as s:
        s.execute(update(PinGuard).where(PinGuard.household_id == h.id).values(locked_until=utcnow()))
        s.commit()
    r = _counter(world, {"household_id": h.id, "pin": "864209", "items": [{"item_id": bag["id"]}]})
    assert r.status_code == 201, r.text
    assert balance(engine, h) == 90


def test_fulfil_a_reservation_with_the_pin(client, world, engine):
    h = world.households[0]
    earn(engine, h, 50)
    repair = add_item(world, name="乐修匠上门维修", kind="service", price_points=40, stock=None)
    red = reserve(world, repair["id"]).json()
    assert client.put(f"/api/v1/households/{h.id}/pin", json={"pin": "4711"}, headers=world.h("resident")).status_code == 204
    r = client.post(f"/api/v1/redemptions/{red['id']}/fulfil", json={"pin": "4711"}, headers=world.h("clerk"))
    assert r.status_code == 200 and r.json()["consent"] == "pin"
    assert balance(engine, h) == 10
    verify_clean(engine, world.community.id)


def test_door_plate_payload_is_not_a_consent_code(client, world, engine):
    h = world.households[0]
    earn(engine, h, 50)
    bag = add_item(world, price_points=10, stock=None)
    r = _counter(world, {"consent_code": _door_plate(world, h), "items": [{"item_id": bag["id"]}]})
    assert r.status_code == 403 and r.json()["error"]["code"] == "invalid_consent_code"
    assert balance(engine, h) == 50
