"""Consent at the counter: the resident's code or PIN, never the door plate alone; wrong PINs lock."""

from __future__ import annotations

import uuid

from tests.ledger.helpers import earn, verify_clean
from tests.rewards.helpers import add_item, balance, confirm_reset, consent_code, item, reserve, reset_pin


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
    no_pin = _counter(world, {"household_id": h.id, "pin": "258036", "items": [{"item_id": bag["id"]}]})
    assert no_pin.status_code == 403 and no_pin.json()["error"]["code"] == "no_pin"
    # Only the household's members set a PIN themselves; staff reset it for the resident to confirm.
    for role in ("clerk", "committee"):
        assert client.put(f"/api/v1/households/{h.id}/pin", json={"pin": "258036"}, headers=world.h(role)).status_code == 404
    assert reset_pin(world, h, "258036", by="clerk").status_code == 403  # managers reset; clerks confirm
    for pin, code in (("12ab56", "invalid_pin"), ("2580", "invalid_pin"), ("1234567", "invalid_pin"), ("１２３４５６", "invalid_pin"),
                      ("111111", "weak_pin"), ("123456", "weak_pin"), ("987654", "weak_pin")):
        r = reset_pin(world, h, pin)
        assert r.status_code == 400 and r.json()["error"]["code"] == code, (pin, r.text)
    reset = reset_pin(world, h, "258036")
    assert reset.status_code == 201 and reset.json()["status"] == "pending", reset.text
    # Pending: not the household's PIN yet.
    r = _counter(world, {"household_id": h.id, "pin": "258036", "items": [{"item_id": bag["id"]}]})
    assert r.status_code == 403 and r.json()["error"]["code"] == "no_pin"
    r_id = reset.json()["id"]
    assert confirm_reset(world, r_id, by="org_admin").status_code == 200
    r = _counter(world, {"household_id": h.id, "pin": "258036", "items": [{"item_id": bag["id"]}]})
    assert r.status_code == 201, r.text
    assert r.json()["redemptions"][0]["consent"] == "pin"
    assert balance(engine, h) == 90
    assert confirm_reset(world, r_id, by="clerk").json()["replayed"] is True  # confirmed once
    verify_clean(engine, world.community.id)


def test_the_resident_sets_a_six_digit_pin_and_an_old_shorter_pin_keeps_working(client, world, engine):
    from sqlmodel import Session

    from app.core.security import hash_password
    from app.places.models import Household

    h = world.households[0]
    earn(engine, h, 100)
    bag = add_item(world, price_points=10, stock=None)
    pin = f"/api/v1/households/{h.id}/pin"
    assert client.put(pin, json={"pin": "4711"}, headers=world.h("resident")).json()["error"]["code"] == "invalid_pin"
    # A PIN set before 6 digits were required (migration 0015 keeps them): it works until it is changed.
    with Session(engine) as s:
        s.get(Household, h.id).pin_hash = hash_password("4711")
        s.commit()
    assert _counter(world, {"household_id": h.id, "pin": "4711", "items": [{"item_id": bag["id"]}]}).status_code == 201
    assert client.put(pin, json={"pin": "471902"}, headers=world.h("resident")).status_code == 204
    assert _counter(world, {"household_id": h.id, "pin": "4711", "items": [{"item_id": bag["id"]}]}).json()["error"]["code"] == "wrong_pin"
    assert _counter(world, {"household_id": h.id, "pin": "471902", "items": [{"item_id": bag["id"]}]}).status_code == 201
    assert balance(engine, h) == 80


def test_fulfil_a_reservation_with_the_pin(client, world, engine):
    h = world.households[0]
    earn(engine, h, 50)
    repair = add_item(world, name="乐修匠上门维修", kind="service", price_points=40, stock=None)
    red = reserve(world, repair["id"]).json()
    assert client.put(f"/api/v1/households/{h.id}/pin", json={"pin": "471902"}, headers=world.h("resident")).status_code == 204
    r = client.post(f"/api/v1/redemptions/{red['id']}/fulfil", json={"pin": "471902"}, headers=world.h("clerk"))
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
