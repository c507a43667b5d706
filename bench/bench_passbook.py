"""Passbook with a long history: balance and the first statement page for a household with 100,000
entries against one with 10, through the HTTP API on PostgreSQL. Target: within 1.5×.

    .venv/bin/python -m bench.bench_passbook [--entries 100000]
"""

from __future__ import annotations

import argparse
import os
import uuid
from datetime import UTC, datetime, timedelta

from sqlmodel import Session


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()

    from bench.common import drop_database, fresh_database, record, timed

    os.environ.setdefault("LOG_LEVEL", "WARNING")

    url = fresh_database("passbook")
    os.environ["DATABASE_URL"] = url
    try:
        from fastapi.testclient import TestClient

        from app.core.db import get_engine
        from app.identity.models import Role, RoleGrant, User
        from app.identity.service import issue_tokens
        from app.ledger import service as ledger
        from app.ledger.models import LedgerPolicy
        from app.places.models import Building, Community, Compound, Household, Street
        from app.places.service import new_public_code

        engine = get_engine()
        with Session(engine, expire_on_commit=False) as s:
            street = Street(city="上海市", district="长宁区", name="基准街道")
            s.add(street)
            s.flush()
            community = Community(name="基准社区", street_id=street.id)
            s.add(community)
            s.flush()
            compound = Compound(name="一期", community_id=community.id)
            s.add(compound)
            s.flush()
            building = Building(name="1号楼", compound_id=compound.id, community_id=community.id)
            s.add(building)
            s.flush()
            small = Household(community_id=community.id, building_id=building.id, door_plate="101", public_code=new_public_code(s))
            big = Household(community_id=community.id, building_id=building.id, door_plate="102", public_code=new_public_code(s))
            s.add_all([small, big])
            clerk = User(username="bench-clerk")
            s.add(clerk)
            s.flush()
            s.add(RoleGrant(user_id=clerk.id, role=Role.clerk, community_id=community.id))
            # A rolling expiry policy, so the balance request also computes the points expiring soon.
            s.add(LedgerPolicy(community_id=community.id, expiry_mode="rolling", expiry_months=12))
            s.commit()
            token = issue_tokens(s, clerk).access_token

        start = datetime(2024, 1, 1, tzinfo=UTC)
        for household, n in ((small, 10), (big, args.entries)):
            done = 0
            while done < n:
                k = min(5000, n - done)
                with Session(engine) as s:
                    ledger.post_credits(
                        s,
                        [
                            ledger.Credit(community.id, household.id, 1 + i % 5, "checkin", f"bench:{uuid.uuid4().hex}", "桶边督导 厨余 分类正确",
                                          start + timedelta(minutes=done + i), 300, "kitchen")
                            for i in range(k)
                        ],
                    )
                    s.commit()
                done += k
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")

        from app.main import app

        headers = {"Authorization": f"Bearer {token}"}
        figures = {}
        with TestClient(app) as client:
            for _round in range(2):  # the second round is measured; the first warms caches for both
                for household, label in ((small, "10"), (big, f"{args.entries:,}")):
                    for what, path in (("balance", "passbook"), ("first page", "statement?limit=20")):
                        url_ = f"/api/v1/households/{household.id}/{path}"
                        assert client.get(url_, headers=headers).status_code == 200
                        figures[(what, label)] = timed(lambda u=url_: client.get(u, headers=headers), args.requests)
        lines = [f"| request | 10 entries p50 (ms) | {args.entries:,} entries p50 (ms) | ratio | target |", "|---|---|---|---|---|"]
        ratios = []
        for what in ("balance", "first page"):
            a, b = figures[(what, "10")]["p50"], figures[(what, f"{args.entries:,}")]["p50"]
            lines.append(f"| {what} | {a:.2f} | {b:.2f} | {b / a:.2f}× | ≤ 1.5× {'✓' if b / a <= 1.5 else '✗'} |")
            ratios.append(f"{what} {b / a:.2f}×")
        record("passbook", "Passbook with a long history (HTTP API, PostgreSQL)", lines,
               f"{', '.join(ratios)} of a 10-entry passbook's time at {args.entries:,} entries")
    finally:
        from app.core.db import get_engine

        get_engine().dispose()
        drop_database(url)


if __name__ == "__main__":
    main()
