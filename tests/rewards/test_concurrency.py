"""Real concurrency on PostgreSQL: threads, each with its own connection, racing on stock, limits,
idempotency keys, consent codes and the lapse job."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, func, select, text, update
from sqlmodel import Session

from app.core.db import utcnow
from app.identity.auth import Grant, Principal
from app.identity.models import Role
from app.kit.errors import Conflict
from app.ledger.models import JournalEntry
from app.rewards import consent, flows, service
from app.rewards.models import FulfilRequest, Redemption, ReserveRequest, RewardItem
from tests.ledger.helpers import earn, verify_clean
from tests.rewards.helpers import add_item, balance, reset_pin, staff_pin
from tests.support import race as race_calls


@pytest.fixture
def pg_engine(engine):
    racing = create_engine(engine.url, pool_size=40, max_overflow=0, pool_timeout=60)
    yield racing
    racing.dispose()


def race(n: int, workers: int, fn):
    barrier = threading.Barrier(workers)
    results, lock = [], threading.Lock()

    def run(i):
        if i < workers:
            barrier.wait()
        try:
            out = fn(i)
        except Exception as e:  # noqa: BLE001 - collected for assertions
            out = e
        with lock:
            results.append(out)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(run, range(n)))
    return results


_RESIDENT_USER: dict[str, int] = {}


@pytest.fixture(autouse=True)
def _resident_user(world):
    _RESIDENT_USER["id"] = world.users["resident"]


def _resident(household) -> Principal:
    """A member of `household` (the user row is any real one: only the membership claim matters here)."""
    return Principal(user_id=_RESIDENT_USER["id"], household_ids=(household.id,))


def _reserve(pg_engine, household, item_id, key=None):
    with Session(pg_engine, expire_on_commit=False) as s:
        return flows.reserve(s, _resident(household), household.id, ReserveRequest(item_id=item_id, idempotency_key=key or uuid.uuid4().hex))


def _stock(pg_engine, item_id) -> int | None:
    with Session(pg_engine) as s:
        return s.get(RewardItem, item_id).stock


def test_100_reservations_of_an_item_with_stock_10(world, pg_engine):
    hs = world.households
    for h in hs:
        earn(pg_engine, h, 1000)
    bag = add_item(world, price_points=5, stock=10)
    results = race(100, 40, lambda i: _reserve(pg_engine, hs[i % len(hs)], bag["id"]))
    ok = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, Conflict)]
    assert len(ok) == 10 and len(refused) == 90, [r for r in results if isinstance(r, Exception) and not isinstance(r, Conflict)][:3]
    assert {r.code for r in refused} == {"out_of_stock"}
    assert _stock(pg_engine, bag["id"]) == 0
    assert sum(1000 - balance(pg_engine, h) for h in hs) == 50
    verify_clean(pg_engine, world.community.id)


def test_same_key_30_times_at_once_is_one_reservation(world, pg_engine):
    h = world.households[0]
    earn(pg_engine, h, 100)
    bag = add_item(world, price_points=7, stock=5)
    key = uuid.uuid4().hex
    results = race(30, 30, lambda i: _reserve(pg_engine, h, bag["id"], key))
    assert all(not isinstance(r, Exception) for r in results), [r for r in results if isinstance(r, Exception)][:3]
    assert len({r.id for r in results}) == 1 and sum(not r.replayed for r in results) == 1
    assert balance(pg_engine, h) == 93 and _stock(pg_engine, bag["id"]) == 4
    with Session(pg_engine) as s:
        assert s.scalar(select(func.count()).select_from(Redemption).where(Redemption.household_id == h.id)) == 1
        assert s.scalar(select(func.count()).select_from(JournalEntry).where(JournalEntry.household_id == h.id, JournalEntry.source == "redemption")) == 1
    verify_clean(pg_engine, world.community.id)


def test_household_limit_holds_under_concurrency(world, pg_engine):
    h = world.households[0]
    earn(pg_engine, h, 1000)
    repair = add_item(world, name="乐修匠上门维修", kind="service", price_points=10, stock=None, limit_per_household=2, limit_period="month")
    results = race(30, 30, lambda i: _reserve(pg_engine, h, repair["id"]))
    ok = [r for r in results if not isinstance(r, Exception)]
    assert len(ok) == 2 and {r.code for r in results if isinstance(r, Conflict)} == {"limit_reached"}
    assert balance(pg_engine, h) == 980
    verify_clean(pg_engine, world.community.id)


def test_one_consent_code_fulfils_once_among_10_clerks(world, pg_engine):
    h = world.households[0]
    earn(pg_engine, h, 1000)
    soap = add_item(world, price_points=10, stock=None)
    reds = [_reserve(pg_engine, h, soap["id"]) for _ in range(10)]
    code = consent.issue_code(h.id).code
    clerk = Principal(user_id=world.users["clerk"], grants=(Grant(Role.clerk, world.community.id),))

    def fulfil(i):
        with Session(pg_engine, expire_on_commit=False) as s:
            return flows.fulfil(s, clerk, reds[i].id, FulfilRequest(consent_code=code))

    results = race(10, 10, fulfil)
    done = [r for r in results if not isinstance(r, Exception)]
    assert len(done) == 1, results
    assert {r.code for r in results if isinstance(r, Exception)} == {"consent_code_used"}
    verify_clean(pg_engine, world.community.id)


def test_two_lapse_jobs_at_once_release_each_hold_once(world, pg_engine):
    hs = world.households
    for h in hs:
        earn(pg_engine, h, 100)
    bag = add_item(world, price_points=10, stock=40)
    for h in hs:
        for _ in range(3):
            _reserve(pg_engine, h, bag["id"])
    with Session(pg_engine) as s:
        s.execute(update(Redemption).where(Redemption.item_id == bag["id"]).values(expires_at=utcnow() - timedelta(minutes=1)))
        s.commit()

    def job(i):
        with Session(pg_engine) as s:
            return service.lapse_due(s, world.community.id, batch=5)

    results = race(4, 4, job)
    assert all(isinstance(r, tuple) for r in results), results
    assert sum(r[0] for r in results) == 3 * len(hs) and sum(r[1] for r in results) == 30 * len(hs)
    assert _stock(pg_engine, bag["id"]) == 40
    assert all(balance(pg_engine, h) == 100 for h in hs)
    verify_clean(pg_engine, world.community.id)


def test_parallel_wrong_pins_get_no_more_guesses_than_sequential_ones(world, pg_engine):
    """Checks of one clerk's PINs take turns, each counted before the next is checked: 20 guesses at
    once get the 5 checks that 20 in a row would, the rest wait and are refused."""
    from app.rewards.models import CounterLine, CounterRequest

    h = world.households[4]
    earn(pg_engine, h, 100)
    soap = add_item(world, price_points=10, stock=None)
    staff_pin(world, h, "975310", by="committee", confirmed_by="org_admin")
    clerk = Principal(user_id=world.users["clerk"], grants=(Grant(Role.clerk, world.community.id),))

    def guess(i):
        with Session(pg_engine, expire_on_commit=False) as s:
            body = CounterRequest(household_id=h.id, pin=f"{100000 + i}", items=[CounterLine(item_id=soap["id"])], idempotency_key=uuid.uuid4().hex)
            return flows.counter_spend(s, clerk, world.community.id, body)

    results = race(20, 20, guess)
    codes = [getattr(r, "code", None) for r in results]
    assert codes.count("wrong_pin") == 4 and codes.count("staff_locked") == 16, codes
    assert balance(pg_engine, h) == 100


def test_many_clerks_guessing_one_household_at_once_lock_it_after_ten(world, pg_engine):
    """20 staff members (each with a guess to spare) at one household at the same instant: the
    household's checks take turns too, and the tenth failure locks it."""
    from app.rewards.models import CounterLine, CounterRequest

    h = world.households[5]
    earn(pg_engine, h, 100)
    soap = add_item(world, price_points=10, stock=None)
    staff_pin(world, h, "975310", by="committee", confirmed_by="org_admin")

    def guess(i):
        clerk = Principal(user_id=10_000_000 + i, grants=(Grant(Role.clerk, world.community.id),))
        with Session(pg_engine, expire_on_commit=False) as s:
            body = CounterRequest(household_id=h.id, pin=f"{100000 + i}", items=[CounterLine(item_id=soap["id"])], idempotency_key=uuid.uuid4().hex)
            return flows.counter_spend(s, clerk, world.community.id, body)

    results = race(20, 20, guess)
    codes = [getattr(r, "code", None) for r in results]
    assert codes.count("wrong_pin") == 9 and codes.count("pin_locked") == 11, codes
    locked = next(r for r in results if getattr(r, "code", None) == "pin_locked")
    assert 1 <= locked.extra["retry_after"] <= 60
    assert balance(pg_engine, h) == 100


def test_a_reset_confirmed_twice_at_once_is_applied_once(world, pg_engine):
    h = world.households[6]
    r = reset_pin(world, h, "286039")
    assert r.status_code == 201, r.text
    reset_id = r.json()["id"]

    def confirm(role):
        def run():
            user = world.users[role]
            principal = Principal(user_id=user, grants=(Grant(Role(role), world.community.id),))
            with Session(pg_engine, expire_on_commit=False) as s:
                return flows.confirm_pin_reset(s, principal, reset_id)
        return run

    results = race_calls(confirm("clerk"), confirm("org_admin"))
    assert sorted(r.replayed for r in results) == [False, True]
    assert all(r.status == "confirmed" for r in results)
    with Session(pg_engine) as s:
        audits = s.execute(text("SELECT count(*) FROM audit_log WHERE action = 'rewards.pin_reset_confirm' AND object_id = :h"),
                           {"h": str(h.id)}).scalar_one()
    assert audits == 1


def test_holds_under_concurrency_never_overspend_and_settle_once(world, pg_engine):
    """Held points are not spendable: 20 reservations at once against 100 points hold exactly 90; then
    each hold raced by a hand-over and a cancellation (and a lapse job) ends exactly one way, and the
    household's held points on its account row always equal its open holds."""
    h = world.households[2]
    earn(pg_engine, h, 100)
    service_item = add_item(world, price_points=30, stock=None, hold_hours=1)
    results = race(20, 20, lambda i: _reserve(pg_engine, h, service_item["id"]))
    held = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(held) == 3 and all(getattr(e, "code", None) == "insufficient_points" for e in refused)
    with Session(pg_engine) as s:
        account = s.execute(text("SELECT balance, held FROM ledger_account WHERE household_id = :h"), {"h": h.id}).one()
    assert tuple(account) == (10, 90)

    clerk = Principal(user_id=world.users["clerk"], grants=(Grant(Role.clerk, world.community.id),))

    def settle(i):
        redemption_id = held[i // 3].id
        with Session(pg_engine, expire_on_commit=False) as s:
            try:
                if i % 3 == 0:
                    done = service.fulfil(s, service.get_redemption(s, redemption_id), actor_user_id=clerk.user_id, consent="code")
                elif i % 3 == 1:
                    done = service.release(s, redemption_id, service.RedemptionStatus.cancelled, actor_user_id=clerk.user_id, reason="取消")
                else:
                    done = service.release(s, redemption_id, service.RedemptionStatus.lapsed, actor_user_id=None, reason="超时",
                                           now=utcnow() + timedelta(hours=2))
                s.commit()
            except Conflict:  # another of the three won
                done = False
            return redemption_id, done

    outcomes = race(9, 9, settle)
    for r in held:  # per redemption: exactly one of hand-over, cancellation, lapse won
        assert [done for rid, done in outcomes if rid == r.id].count(True) == 1, outcomes
    with Session(pg_engine) as s:
        statuses = [s.get(Redemption, r.id).status for r in held]
        balance_now, held_now = s.execute(text("SELECT balance, held FROM ledger_account WHERE household_id = :h"), {"h": h.id}).one()
    fulfilled = statuses.count("fulfilled")
    assert held_now == 0 and balance_now == 10 + 30 * (3 - fulfilled)
    verify_clean(pg_engine, world.community.id)
