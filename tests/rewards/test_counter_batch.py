"""A queue of residents at the counter in one set-based call (`flows.counter_spend_many`, what the
demo generator's exchange days use): the same answers and guarantees as `counter_spend` one by one —
stock never oversold, points never negative, limits kept, each request all or nothing, idempotent."""

from __future__ import annotations

import uuid
from functools import partial

from sqlmodel import Session

from app.identity.auth import Grant, Principal
from app.identity.models import Role
from app.kit.errors import DomainError
from app.rewards import consent, flows
from app.rewards.models import CounterLine, CounterRequest, RewardItem
from tests.ledger.helpers import earn, verify_clean
from tests.rewards.helpers import add_item, balance
from tests.support import race


def _clerk(world) -> Principal:
    return Principal(user_id=world.users["clerk"], grants=(Grant(Role.clerk, world.community.id),))


def _request(household, *items: int, key: str | None = None, code: str | None = None) -> CounterRequest:
    return CounterRequest(
        consent_code=code or consent.issue_code(household.id).code,
        items=[CounterLine(item_id=i) for i in items],
        idempotency_key=key or uuid.uuid4().hex,
    )


def _spend(engine, world, requests):
    with Session(engine, expire_on_commit=False) as s:
        return flows.counter_spend_many(s, _clerk(world), world.community.id, requests)


def _stock(engine, item_id) -> int | None:
    with Session(engine) as s:
        return s.get(RewardItem, item_id).stock


def _code(result) -> str | None:
    return result.code if isinstance(result, DomainError) else None


def test_a_queue_is_decided_in_order_all_or_nothing_per_resident(world, engine):
    hs = world.households
    for h, points in zip(hs, (100, 100, 100, 25, 100, 100, 100, 100), strict=True):
        earn(engine, h, points)
    bag = add_item(world, name="环保袋", price_points=20, stock=3)
    repair = add_item(world, name="乐修匠上门维修", kind="service", price_points=30, stock=None, limit_per_household=1, limit_period="month")
    used = consent.issue_code(hs[6].id).code
    queue = [
        _request(hs[0], bag["id"], repair["id"]),  # 50 points, one bag
        _request(hs[1], bag["id"], bag["id"]),  # two bags: the last two
        _request(hs[2], bag["id"], repair["id"]),  # no bag left: refused whole (the repair is not taken either)
        _request(hs[3], repair["id"]),  # 25 points for 30: refused
        _request(hs[4], repair["id"], repair["id"]),  # two repairs, limit one a month: refused
        _request(hs[5], repair["id"]),
        _request(hs[6], repair["id"], code=used),
        _request(hs[7], repair["id"], code=used.replace(str(hs[6].id), str(hs[7].id), 1)),  # forged: the signature fails
        CounterRequest(household_id=hs[7].id, items=[CounterLine(item_id=repair["id"])], idempotency_key=uuid.uuid4().hex),  # no consent
    ]
    results = _spend(engine, world, queue)

    assert [_code(r) for r in results] == [
        None, None, "out_of_stock", "insufficient_points", "limit_reached", None, None, "invalid_consent_code", "consent_required",
    ]
    assert [r.points for r in results if not isinstance(r, DomainError)] == [50, 40, 30, 30]
    assert all(x.status == "fulfilled" and x.consent == "code" for r in results if not isinstance(r, DomainError) for x in r.redemptions)
    assert results[0].redemptions[0].balance_after == 80 and results[0].redemptions[1].balance_after == 50
    assert [balance(engine, h) for h in hs] == [50, 60, 100, 25, 100, 70, 70, 100]
    assert _stock(engine, bag["id"]) == 0
    # A refused resident's code was not used up: they can try again once the counter has stock.
    assert not isinstance(_spend(engine, world, [_request(hs[2], repair["id"], code=queue[2].consent_code)])[0], DomainError)
    # The used code cannot be used again.
    assert _code(_spend(engine, world, [_request(hs[6], repair["id"], code=used)])[0]) == "consent_code_used"
    verify_clean(engine, world.community.id)

    # The passbook shows the spend as `counter_spend` writes it: one debit per item.
    r = world.client.get(f"/api/v1/households/{hs[0].id}/statement", headers=world.h("committee"))
    assert r.status_code == 200, r.text
    assert sorted(line["points_out"] for line in r.json()["items"] if line["points_out"]) == [20, 30]


def test_sending_the_queue_again_replays_it_and_moves_nothing(world, engine):
    hs = world.households[:3]
    for h in hs:
        earn(engine, h, 100)
    soap = add_item(world, name="洗洁精", price_points=30, stock=10)
    keys = [uuid.uuid4().hex for _ in hs]
    first = _spend(engine, world, [_request(h, soap["id"], soap["id"], key=k) for h, k in zip(hs, keys, strict=True)])
    again = _spend(engine, world, [_request(h, soap["id"], soap["id"], key=k) for h, k in zip(hs, keys, strict=True)])
    assert [r.replayed for r in first] == [False] * 3 and [r.replayed for r in again] == [True] * 3
    assert [[x.id for x in r.redemptions] for r in first] == [[x.id for x in r.redemptions] for r in again]
    assert [balance(engine, h) for h in hs] == [40, 40, 40] and _stock(engine, soap["id"]) == 4
    # The same request twice in one queue is one spend.
    key = uuid.uuid4().hex
    twice = _spend(engine, world, [_request(hs[0], soap["id"], key=key), _request(hs[0], soap["id"], key=key)])
    assert [_code(r) for r in twice] == [None, None] and balance(engine, hs[0]) == 10
    verify_clean(engine, world.community.id)


def test_queues_racing_for_the_last_stock_never_oversell(world, engine):
    from sqlalchemy import create_engine

    racing = create_engine(engine.url, pool_size=8, max_overflow=0)
    hs = world.households
    for h in hs:
        earn(engine, h, 1000)
    bag = add_item(world, price_points=10, stock=7)
    queues = [[_request(h, bag["id"]) for h in hs] for _ in range(4)]
    results = [r for out in race(*(partial(_spend, racing, world, q) for q in queues)) for r in out]
    racing.dispose()
    done = [r for r in results if not isinstance(r, DomainError)]
    assert len(results) == 4 * len(hs) and len(done) == 7
    assert {r.code for r in results if isinstance(r, DomainError)} == {"out_of_stock"}
    assert _stock(engine, bag["id"]) == 0
    assert sum(1000 - balance(engine, h) for h in hs) == 70
    verify_clean(engine, world.community.id)
