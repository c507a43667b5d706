"""Hypothesis stateful test: random earn / spend / reverse / expire sequences, invariants after every step.

An independent model replays the non-reversed events in time order with FIFO lots; the ledger must
agree with it on the balance and on exactly how much each expiry run takes.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlmodel import Session

from app.core.db import simulated_clock
from app.ledger import expiry
from app.ledger import service as ledger
from app.ledger.models import LedgerPolicy
from app.ledger.service import Credit, InsufficientPoints
from app.ledger.verify import verify
from app.places.models import Household
from app.places.service import new_public_code

SH = ZoneInfo("Asia/Shanghai")


def test_ledger_invariants_hold_for_random_histories(world, engine):
    community_id, building_id = world.community.id, world.buildings[0].id
    with Session(engine) as s:
        policy = s.get(LedgerPolicy, community_id) or LedgerPolicy(community_id=community_id)
        policy.expiry_mode, policy.expiry_months = "rolling", 2
        s.add(policy)
        s.commit()

    class LedgerMachine(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            with Session(engine) as s:
                h = Household(community_id=community_id, building_id=building_id, door_plate=uuid.uuid4().hex[:12], public_code=new_public_code(s))
                s.add(h)
                s.commit()
                self.household_id = h.id
            self.clock = datetime(2025, 1, 1, 4, tzinfo=UTC)
            self.events: list[dict] = []  # {"id", "at", "amount", "reversed"}
            self.cutoffs_run: set[datetime] = set()  # one expiry per cutoff: a later run for it takes nothing

        # --- model ------------------------------------------------------------------------------
        def model_balance(self) -> int:
            return sum(e["amount"] for e in self.events if not e["reversed"])

        def model_unexpired_before(self, cutoff: datetime) -> int:
            # A debit takes the oldest points available; when a correction rewrote history so that a
            # debit found nothing left, it is owed by the next points earned.
            lots: list[list] = []
            debt = 0
            for e in sorted((e for e in self.events if not e["reversed"]), key=lambda e: (e["at"], e["id"])):
                if e["amount"] > 0:
                    lots.append([e["at"], e["amount"]])
                else:
                    debt += -e["amount"]
                for lot in lots:
                    take = min(lot[1], debt)
                    lot[1] -= take
                    debt -= take
            return sum(left for at, left in lots if at < cutoff)

        # --- rules ------------------------------------------------------------------------------
        @rule(points=st.integers(1, 50), days=st.integers(0, 40))
        def earn(self, points, days):
            self.clock += timedelta(days=days)
            with Session(engine) as s:
                [eid] = ledger.post_credits(s, [Credit(community_id, self.household_id, points, "checkin", f"prop:{uuid.uuid4().hex}", "测试", self.clock)])
                s.commit()
            self.events.append({"id": eid, "at": self.clock, "amount": points, "reversed": False})

        @rule(points=st.integers(1, 60))
        def spend(self, points):
            with Session(engine) as s:
                try:
                    posted = ledger.post(
                        s, community_id=community_id, idempotency_key=f"prop:{uuid.uuid4().hex}", source="redemption", memo="兑换",
                        lines=[ledger.Line(-points, household_id=self.household_id), ledger.Line(points, system=ledger.SystemAccount.redeemed)],
                        household_id=self.household_id, occurred_at=self.clock,
                    )
                    s.commit()
                except InsufficientPoints:
                    assert points > self.model_balance()
                    return
            assert points <= self.model_balance() + 0
            self.events.append({"id": posted.entry_id, "at": self.clock, "amount": -points, "reversed": False})

        def reversible(self):
            return [e for e in self.events if not e["reversed"] and not e.get("is_expiry")]

        @precondition(lambda self: bool(self.reversible()))
        @rule(data=st.data())
        def reverse(self, data):
            target = data.draw(st.sampled_from(self.reversible()))
            with simulated_clock(self.clock), Session(engine) as s:  # corrected in the machine's time
                try:
                    ledger.reverse(s, target["id"], reason="测试冲正", actor_user_id=None, idempotency_key=f"prop:{uuid.uuid4().hex}")
                    s.commit()
                except InsufficientPoints:
                    assert target["amount"] > self.model_balance()
                    return
            target["reversed"] = True

        @rule(days=st.integers(0, 90))
        def expire(self, days):
            self.clock += timedelta(days=days)
            with Session(engine) as s:
                cutoff, _ = expiry.cutoff_at(s.get(LedgerPolicy, community_id), SH, self.clock)
                expected = 0 if cutoff in self.cutoffs_run else min(self.model_unexpired_before(cutoff), self.model_balance())
                before = ledger.balance_of(s, self.household_id)
                expiry.run_expiry(s, community_id, SH, self.clock)
                taken = before - ledger.balance_of(s, self.household_id)
            assert taken == max(expected, 0)
            if taken:
                self.cutoffs_run.add(cutoff)
            if taken:
                with Session(engine) as s:
                    eid = ledger.entry_by_key(s, f"expiry:{self.household_id}:{cutoff.astimezone(SH).date().isoformat()}")
                self.events.append({"id": eid, "at": self.clock, "amount": -taken, "reversed": False, "is_expiry": True})

        # --- invariants ---------------------------------------------------------------------------
        @invariant()
        def balance_matches_model_and_is_never_negative(self):
            with Session(engine) as s:
                balance = ledger.balance_of(s, self.household_id)
            assert balance == self.model_balance() >= 0

        @invariant()
        def ledger_verifies(self):
            with Session(engine) as s:
                assert verify(s, community_id).clean

    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(max_examples=25, stateful_step_count=15, deadline=None, suppress_health_check=list(HealthCheck)),
    )
