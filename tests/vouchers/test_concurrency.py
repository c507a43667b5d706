"""Real concurrency on PostgreSQL: a voucher claimed by many at once is claimed once; expiry jobs racing each other."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import update
from sqlmodel import Session

from app.core.db import utcnow
from app.identity.auth import Principal
from app.vouchers import flows
from app.vouchers import service as vouchers
from app.vouchers.models import Voucher, VoucherClaim
from tests.ledger.helpers import verify_clean
from tests.rewards.helpers import balance
from tests.rewards.test_concurrency import pg_engine, race  # noqa: F401 - fixture


def _issue(world, engine, points: int) -> tuple[int, str]:
    with Session(engine) as s:
        v, code, _ = vouchers.issue_voucher(s, community_id=world.community.id, points=points, idempotency_key=uuid.uuid4().hex, actor_user_id=None)
        s.commit()
        return v.id, code


def test_a_voucher_claimed_by_20_threads_is_claimed_once(world, pg_engine):  # noqa: F811
    hs = world.households
    _, code = _issue(world, pg_engine, 50)

    def claim(i):
        h = hs[i % len(hs)]
        with Session(pg_engine) as s:
            return flows.claim(s, Principal(user_id=world.users["resident"], household_ids=(h.id,)), h.id, VoucherClaim(code=code))

    results = race(20, 20, claim)
    ok = [r for r in results if not isinstance(r, Exception)]
    winners = {r.household_id for r in ok}
    assert len(winners) == 1, results
    assert all(getattr(r, "code", None) == "voucher_invalid" for r in results if isinstance(r, Exception))
    assert sum(balance(pg_engine, h) for h in hs) == 50
    verify_clean(pg_engine, world.community.id)


def test_four_expiry_jobs_at_once_settle_each_voucher_once(world, pg_engine):  # noqa: F811
    ids = [_issue(world, pg_engine, 5) for _ in range(10)]
    with Session(pg_engine) as s:
        s.execute(update(Voucher).where(Voucher.id.in_([i for i, _ in ids])).values(expires_at=utcnow() - timedelta(seconds=1)))
        s.commit()

    def job(i):
        with Session(pg_engine) as s:
            return vouchers.expire_due(s, world.community.id, batch=3)

    results = race(4, 4, job)
    assert sum(r[0] for r in results) == 10 and sum(r[1] for r in results) == 50
    verify_clean(pg_engine, world.community.id)
