"""Posting helpers for ledger tests (earning acts come from other domains; here we post credits directly)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import Session

from app.core.db import utcnow
from app.ledger import service as ledger
from app.ledger.service import Credit


def earn(engine, household, points: int, *, when: datetime | None = None, source: str = "checkin", grams: int | None = None, category: str | None = None, key: str | None = None) -> int:
    with Session(engine) as s:
        [entry_id] = ledger.post_credits(
            s,
            [
                Credit(
                    community_id=household.community_id,
                    household_id=household.id,
                    points=points,
                    source=source,
                    idempotency_key=key or f"test:{uuid.uuid4().hex}",
                    memo="桶边督导 厨余 分类正确" if source == "checkin" else f"测试 {source}",
                    occurred_at=when or utcnow(),
                    quantity_g=grams,
                    category=category,
                )
            ],
        )
        s.commit()
        return entry_id


def spend(engine, household, points: int, key: str | None = None) -> ledger.Posted:
    with Session(engine) as s:
        posted = ledger.post(
            s,
            community_id=household.community_id,
            idempotency_key=key or f"spend:{uuid.uuid4().hex}",
            source="redemption",
            memo="兑换 测试商品",
            lines=[ledger.Line(-points, household_id=household.id), ledger.Line(points, system=ledger.SystemAccount.redeemed)],
            household_id=household.id,
        )
        s.commit()
        return posted


def expire(engine, household, points: int, when: datetime) -> None:
    """Points of the household expired at `when` (as the expiry job posts them)."""
    with Session(engine) as s:
        ledger.post(
            s, community_id=household.community_id, idempotency_key=f"exp:{household.id}:{when.isoformat()}",
            source="expiry", memo="积分过期", household_id=household.id, occurred_at=when,
            lines=[ledger.Line(-points, household_id=household.id), ledger.Line(points, system=ledger.SystemAccount.expired)],
        )
        s.commit()


def verify_clean(engine, community_id: int | None = None) -> None:
    from app.ledger.verify import verify

    with Session(engine) as s:
        report = verify(s, community_id)
    assert report.clean, report
