"""Hypothesis stateful test through the HTTP API: random earn / reserve / fulfil / cancel / lapse
sequences; after every step the balance, the stock and the limit agree with a plain model, and the
ledger verifies clean."""

from __future__ import annotations

import uuid
from datetime import timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import update
from sqlmodel import Session

from app.core.db import utcnow
from app.rewards.models import Redemption
from tests.ledger.helpers import earn, verify_clean
from tests.rewards.helpers import add_item, balance, consent_code, item, reserve

LIMIT = 4
STOCK = 6


def test_redemption_invariants_hold_for_random_sequences(client, world, engine):
    h = world.households[0]

    class RewardsMachine(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            earn(engine, h, 60)
            self.balance = balance(engine, h)
            self.bag = add_item(world, name="环保袋", price_points=7, stock=STOCK, limit_per_household=LIMIT, limit_period="month")
            self.repair = add_item(world, name="乐修匠", kind="service", price_points=11, stock=None)
            self.stock = STOCK
            self.used = 0  # bag units held or taken by the household this month
            self.held: dict[int, dict] = {}

        @rule(points=st.integers(1, 40))
        def earn_points(self, points):
            earn(engine, h, points)
            self.balance += points

        @rule(qty=st.integers(1, 3), bag=st.booleans())
        def reserve_item(self, qty, bag):
            target = self.bag if bag else self.repair
            r = reserve(world, target["id"], quantity=qty)
            cost = target["price_points"] * qty
            if bag and self.stock < qty:
                expected = "out_of_stock"
            elif bag and self.used + qty > LIMIT:
                expected = "limit_reached"
            elif self.balance < cost:
                expected = "insufficient_points"
            else:
                expected = None
            if expected:
                assert r.status_code == 409 and r.json()["error"]["code"] == expected, (expected, r.text)
                return
            assert r.status_code == 201, r.text
            self.balance -= cost
            if bag:
                self.stock -= qty
                self.used += qty
            self.held[r.json()["id"]] = {"bag": bag, "qty": qty, "points": cost}

        def _release(self, rid):
            red = self.held.pop(rid)
            self.balance += red["points"]
            if red["bag"]:
                self.stock += red["qty"]
                self.used -= red["qty"]

        @precondition(lambda self: self.held)
        @rule(data=st.data())
        def cancel(self, data):
            rid = data.draw(st.sampled_from(sorted(self.held)))
            r = client.post(f"/api/v1/redemptions/{rid}/cancel", json={}, headers=world.h(data.draw(st.sampled_from(["resident", "clerk"]))))
            assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
            self._release(rid)

        @precondition(lambda self: self.held)
        @rule(data=st.data())
        def fulfil(self, data):
            rid = data.draw(st.sampled_from(sorted(self.held)))
            r = client.post(f"/api/v1/redemptions/{rid}/fulfil", json={"consent_code": consent_code(world)}, headers=world.h("clerk"))
            assert r.status_code == 200 and r.json()["status"] == "fulfilled", r.text
            self.held.pop(rid)

        @precondition(lambda self: self.held)
        @rule(data=st.data())
        def lapse(self, data):
            rid = data.draw(st.sampled_from(sorted(self.held)))
            with Session(engine) as s:
                s.execute(update(Redemption).where(Redemption.id == rid).values(expires_at=utcnow() - timedelta(seconds=1)))
                s.commit()
            r = client.post(f"/api/v1/communities/{world.community.id}/redemptions/lapse-runs", headers=world.h("committee"))
            assert r.status_code == 200 and r.json()["lapsed"] == 1, r.text
            self._release(rid)

        @rule()
        def replay_a_reservation(self):
            key = uuid.uuid4().hex
            first = reserve(world, self.repair["id"], key=key)
            if first.status_code != 201:
                assert first.json()["error"]["code"] == "insufficient_points"
                return
            again = reserve(world, self.repair["id"], key=key)
            assert again.json()["id"] == first.json()["id"] and again.json()["replayed"]
            self.balance -= self.repair["price_points"]
            self.held[first.json()["id"]] = {"bag": False, "qty": 1, "points": self.repair["price_points"]}

        @invariant()
        def agrees_with_the_model(self):
            assert balance(engine, h) == self.balance
            assert item(world, self.bag["id"])["stock"] == self.stock

        def teardown(self):
            # Leave nothing held for the next example (it uses the same household).
            for rid in list(self.held):
                client.post(f"/api/v1/redemptions/{rid}/cancel", json={}, headers=world.h("resident"))
            verify_clean(engine, world.community.id)

    run_state_machine_as_test(
        RewardsMachine,
        settings=settings(max_examples=15, stateful_step_count=15, deadline=None, suppress_health_check=list(HealthCheck)),
    )
