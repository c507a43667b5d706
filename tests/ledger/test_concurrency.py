"""Real concurrency on PostgreSQL: threads, each with its own connection, racing on one balance."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import create_engine, func, select
from sqlmodel import Session

from app.ledger import service as ledger
from app.ledger.models import JournalEntry
from app.ledger.service import Credit, InsufficientPoints
from tests.ledger.helpers import earn, spend, verify_clean


@pytest.fixture
def pg_engine(engine):
    racing = create_engine(engine.url, pool_size=40, max_overflow=0, pool_timeout=60)
    yield racing
    racing.dispose()


def _race(n: int, workers: int, fn):
    barrier = threading.Barrier(workers)
    results = []
    lock = threading.Lock()

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


def test_200_spends_against_a_balance_covering_20(world, pg_engine):
    h = world.households[0]
    earn(pg_engine, h, 100)
    results = _race(200, 40, lambda i: spend(pg_engine, h, 5))
    ok = [r for r in results if isinstance(r, ledger.Posted)]
    refused = [r for r in results if isinstance(r, InsufficientPoints)]
    assert len(ok) == 20 and len(refused) == 180, [type(r) for r in results if not isinstance(r, ledger.Posted | InsufficientPoints)]
    assert refused[0].code == "insufficient_points"
    with Session(pg_engine) as s:
        assert ledger.balance_of(s, h.id) == 0
    verify_clean(pg_engine, world.community.id)


def test_same_key_50_times_at_once_posts_once(world, pg_engine):
    h = world.households[1]
    earn(pg_engine, h, 500)
    key = f"redeem:{uuid.uuid4().hex}"
    results = _race(50, 40, lambda i: spend(pg_engine, h, 7, key=key))
    assert all(isinstance(r, ledger.Posted) for r in results), results
    assert len({r.entry_id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    with Session(pg_engine) as s:
        assert ledger.balance_of(s, h.id) == 493
        assert s.scalar(select(func.count()).select_from(JournalEntry).where(JournalEntry.idempotency_key == key)) == 1
    verify_clean(pg_engine, world.community.id)


def test_concurrent_credit_batches_do_not_deadlock_or_double(world, pg_engine):
    """Overlapping batches (same keys, households in different orders) from many threads."""
    hs = world.households
    keys = [f"checkin:{uuid.uuid4().hex}" for _ in range(len(hs))]

    def batch(i):
        order = list(range(len(hs)))
        order = order[i % len(order):] + order[: i % len(order)]
        with Session(pg_engine) as s:
            ids = ledger.post_credits(
                s,
                [
                    Credit(hs[j].community_id, hs[j].id, 3, "checkin", keys[j], "桶边督导", hs[j].created_at)
                    for j in order
                ],
            )
            s.commit()
            return ids

    results = _race(40, 20, batch)
    assert all(isinstance(r, list) for r in results), [r for r in results if not isinstance(r, list)][:3]
    with Session(pg_engine) as s:
        assert [ledger.balance_of(s, h.id) for h in hs] == [3] * len(hs)
    verify_clean(pg_engine, world.community.id)
