"""Spending a household's points needs the resident's consent, and staff cannot manufacture it
(issue 17, findings 5 and 11), all through the HTTP API.

5: a committee member set a household's PIN (204) and spent with it (201), silently replacing the
resident's PIN and lifting its lock. Now staff only reset a PIN for the resident to confirm (their
consent code, or a second staff member in person), and the one who reset it cannot spend with it.
11: any clerk could lock a household out of its right PIN before its exchange day with a few wrong
guesses. Now a clerk's guesses lock the clerk first (5 in an hour, everywhere), a household takes
10 in 15 minutes, from several staff, and its lockout is short (1 minute, doubling to 15 at most).
Every lockout answers 429 with Retry-After.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlmodel import Session

from app.identity.models import Role
from tests.ledger.helpers import earn, verify_clean
from tests.rewards.helpers import (
    add_item,
    balance,
    confirm_reset,
    consent_code,
    counter,
    reset_pin,
    staff_pin,
)

RIGHT = "580314"


def _spend(world, household, item, pin: str, who: str = "clerk"):
    return counter(world, {"household_id": household.id, "pin": pin, "items": [{"item_id": item["id"]}]}, who=who)


def _code(r) -> str:
    return r.json()["error"]["code"]


def _resident_pin(world, household, pin: str = RIGHT) -> None:
    r = world.client.put(f"/api/v1/households/{household.id}/pin", json={"pin": pin}, headers=world.h("resident"))
    assert r.status_code == 204, r.text


def _more_clerks(world, n: int) -> list[str]:
    names = [f"clerk{i}" for i in range(2, n + 2)]
    with Session(world.engine) as s:
        for name in names:
            world._add_user(s, name, Role.clerk)
    return names


def _run_out(engine, key: str) -> None:
    """As if the key's lockout had run its time."""
    from datetime import timedelta

    from app.core.db import utcnow

    with engine.begin() as conn:  # the application's clock, not the database's: a test may have moved it
        conn.execute(text("UPDATE throttle SET locked_until = :past WHERE key = :k"), {"k": key, "past": utcnow() - timedelta(seconds=1)})


# --- finding 5: staff set a PIN and spend with it ----------------------------------------------

def test_a_committee_member_cannot_set_a_pin_and_spend_with_it(client, world, engine):
    h = world.households[0]
    earn(engine, h, 100)
    bag = add_item(world, price_points=10, stock=None)
    _resident_pin(world, h)
    # Before: PUT /households/{id}/pin as committee answered 204 and replaced the resident's PIN.
    r = client.put(f"/api/v1/households/{h.id}/pin", json={"pin": "914702"}, headers=world.h("committee"))
    assert r.status_code == 404
    # A reset waits for the resident: the PIN they chose still stands, the reset one does nothing yet.
    reset = reset_pin(world, h, "914702", by="committee")
    assert reset.status_code == 201 and reset.json()["status"] == "pending", reset.text
    assert _code(_spend(world, h, bag, "914702", who="committee")) == "wrong_pin"
    assert _spend(world, h, bag, RIGHT).status_code == 201
    # The committee member cannot confirm their own reset: it takes a second staff member.
    mine = confirm_reset(world, reset.json()["id"], by="committee")
    assert mine.status_code == 403 and _code(mine) == "pin_reset_same_staff"
    done = confirm_reset(world, reset.json()["id"], by="clerk")
    assert done.status_code == 200 and done.json()["confirmed_with"] == "staff", done.text
    # Now the household's PIN, but never for the one who reset it: not at the counter, not to fulfil.
    refused = _spend(world, h, bag, "914702", who="committee")
    assert refused.status_code == 403 and _code(refused) == "pin_reset_by_you"
    held = client.post(f"/api/v1/households/{h.id}/redemptions", json={"item_id": bag["id"], "idempotency_key": "hold-for-pin-1"},
                       headers=world.h("resident")).json()
    r = client.post(f"/api/v1/redemptions/{held['id']}/fulfil", json={"pin": "914702"}, headers=world.h("committee"))
    assert r.status_code == 403 and _code(r) == "pin_reset_by_you"
    assert balance(engine, h) == 80  # 100 − the resident's spend − the hold
    assert _spend(world, h, bag, "914702", who="clerk").status_code == 201
    assert _code(_spend(world, h, bag, RIGHT)) == "wrong_pin"  # the old PIN is gone once confirmed
    # When the resident sets a PIN of their own again, it is nobody's reset.
    _resident_pin(world, h, "306158")
    assert _spend(world, h, bag, "306158", who="committee").status_code == 201
    verify_clean(engine, world.community.id)


def test_a_reset_with_the_residents_consent_code_applies_at_once(client, world, engine):
    h = world.households[0]
    earn(engine, h, 100)
    bag = add_item(world, price_points=10, stock=None)
    code = consent_code(world)
    r = reset_pin(world, h, "914702", by="committee", consent_code=code, idempotency_key="reset-with-code-1")
    assert r.status_code == 201 and r.json()["status"] == "confirmed" and r.json()["confirmed_with"] == "code", r.text
    again = reset_pin(world, h, "914702", by="committee", consent_code=code, idempotency_key="reset-with-code-1")
    assert again.status_code == 201 and again.json()["replayed"] and again.json()["id"] == r.json()["id"]
    assert _code(reset_pin(world, h, "826451", consent_code=code)) == "consent_code_used"
    other = reset_pin(world, h, "826451", consent_code=consent_code(world, world.households[0]).replace("JFC1.", "JFC1.9", 1))
    assert _code(other) == "invalid_consent_code"
    assert _code(_spend(world, h, bag, "914702", who="committee")) == "pin_reset_by_you"
    assert _spend(world, h, bag, "914702", who="org_admin").status_code == 201


def test_a_pending_reset_lifts_no_lockout(client, world, engine):
    h = world.households[0]
    earn(engine, h, 100)
    bag = add_item(world, price_points=10, stock=None)
    _resident_pin(world, h)
    guessers = ["clerk", *_more_clerks(world, 2)]
    for who, n in zip(guessers, (4, 4, 2), strict=True):
        for _ in range(n):
            r = _spend(world, h, bag, "000111", who=who)
    assert r.status_code == 429 and _code(r) == "pin_locked"
    reset = reset_pin(world, h, "914702", by="committee")
    assert _code(_spend(world, h, bag, RIGHT, who="org_admin")) == "pin_locked"  # the reset changed nothing yet
    assert confirm_reset(world, reset.json()["id"], by="org_admin").status_code == 200
    # Confirmed: a new PIN, and guesses at the old one no longer hold the household back.
    assert _spend(world, h, bag, "914702", who="clerk").status_code == 201


# --- finding 11: a clerk locks a household out of its right PIN ---------------------------------

def test_one_clerk_cannot_lock_a_household_out_of_its_pin(client, world, engine):
    h = world.households[0]
    earn(engine, h, 100)
    bag = add_item(world, price_points=10, stock=None)
    _resident_pin(world, h)
    for left in (4, 3, 2, 1):
        r = _spend(world, h, bag, "000111")
        assert r.status_code == 403 and _code(r) == "wrong_pin" and r.json()["error"]["attempts_left"] == left, r.text
    r = _spend(world, h, bag, "000111")
    assert r.status_code == 429 and _code(r) == "staff_locked"
    assert 890 <= int(r.headers["retry-after"]) <= 900  # 15 minutes
    # The clerk is locked out, even with the right PIN; the household is not.
    r = _spend(world, h, bag, RIGHT)
    assert r.status_code == 429 and _code(r) == "staff_locked" and "retry-after" in r.headers
    assert _spend(world, h, bag, RIGHT, who="committee").status_code == 201
    # The resident's consent code is never held back, not even at the locked clerk's counter.
    assert counter(world, {"consent_code": consent_code(world), "items": [{"item_id": bag["id"]}]}).status_code == 201
    assert balance(engine, h) == 80


def test_a_clerk_guessing_many_households_is_locked_out(client, world, engine):
    bag = add_item(world, price_points=10, stock=None)
    households = world.households[1:7]
    for h in households:
        earn(engine, h, 50)
        staff_pin(world, h, RIGHT, by="committee", confirmed_by="org_admin")
    answers = [_spend(world, h, bag, "000111") for h in households[:5]]
    assert [_code(r) for r in answers] == ["wrong_pin"] * 4 + ["staff_locked"]
    assert answers[-1].status_code == 429 and int(answers[-1].headers["retry-after"]) > 0
    r = _spend(world, households[5], bag, RIGHT)
    assert r.status_code == 429 and _code(r) == "staff_locked"
    # One wrong guess each: none of the households is locked; another staff member serves them all.
    for h in households:
        assert _spend(world, h, bag, RIGHT, who="org_admin").status_code == 201
    verify_clean(engine, world.community.id)


def test_forged_consent_codes_count_against_the_clerk(client, world, engine):
    h = world.households[0]
    earn(engine, h, 100)
    bag = add_item(world, price_points=10, stock=None)
    _resident_pin(world, h)
    genuine = consent_code(world)
    forged = genuine[:-4] + ("AAAA" if not genuine.endswith("AAAA") else "BBBB")
    # A mistaken scan of something else (a door plate) is not a guess.
    for _ in range(6):
        assert _code(counter(world, {"consent_code": "JF1.door.plate", "items": [{"item_id": bag["id"]}]})) == "invalid_consent_code"
    for _ in range(5):
        r = counter(world, {"consent_code": forged, "items": [{"item_id": bag["id"]}]})
        assert r.status_code == 403 and _code(r) == "invalid_consent_code"
    r = _spend(world, h, bag, RIGHT)
    assert r.status_code == 429 and _code(r) == "staff_locked" and "retry-after" in r.headers
    assert counter(world, {"consent_code": genuine, "items": [{"item_id": bag["id"]}]}).status_code == 201


def test_a_household_lockout_is_short_escalating_and_never_permanent(client, world, engine):
    h = world.households[0]
    earn(engine, h, 100)
    bag = add_item(world, price_points=10, stock=None)
    _resident_pin(world, h)
    key = f"consent:household:{h.id}"
    clerks = ["clerk", *_more_clerks(world, 7)]
    turns = iter([c for c in clerks for _ in range(4)])  # four guesses each: no clerk is locked out

    def guesses(n: int):
        return [_spend(world, h, bag, "000111", who=next(turns)) for _ in range(n)]

    answers = guesses(10)
    assert [_code(r) for r in answers] == ["wrong_pin"] * 9 + ["pin_locked"]
    assert 1 <= int(answers[-1].headers["retry-after"]) <= 60
    # While it lasts, the right PIN waits too (a consent code does not); then it works again.
    locked = _spend(world, h, bag, RIGHT, who="org_admin")
    assert locked.status_code == 429 and _code(locked) == "pin_locked" and int(locked.headers["retry-after"]) <= 60
    assert counter(world, {"consent_code": consent_code(world), "items": [{"item_id": bag["id"]}]}, who="org_admin").status_code == 201
    _run_out(engine, key)
    # The next lockout, still without the right PIN in between, lasts twice as long.
    answers = guesses(10)
    assert _code(answers[-1]) == "pin_locked" and 60 < int(answers[-1].headers["retry-after"]) <= 120
    # However many lockouts came before, one lasts 15 minutes at most.
    _run_out(engine, key)
    with engine.begin() as conn:
        conn.execute(text("UPDATE throttle SET lockouts = 30 WHERE key = :k"), {"k": key})
    answers = guesses(10)
    assert _code(answers[-1]) == "pin_locked" and 840 < int(answers[-1].headers["retry-after"]) <= 900
    _run_out(engine, key)
    assert _spend(world, h, bag, RIGHT, who="org_admin").status_code == 201
    assert balance(engine, h) == 80
