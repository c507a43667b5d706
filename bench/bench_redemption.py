"""Exchange-day load on PostgreSQL: residents reserving one hot item (a shared stock row), an item with
unlimited stock, then clerks handing everything over with consent codes; threads with their own
connections, through the rewards flows (authorization, consent, ledger). Prints throughput and latency.

    .venv/bin/python -m bench.bench_redemption [--households 500 --reservations 2000 --threads 16]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from sqlmodel import Session


def _run(fn, n: int, threads: int) -> dict[str, float]:
    samples: list[float] = []

    def one(i):
        t0 = time.perf_counter()
        fn(i)
        samples.append((time.perf_counter() - t0) * 1000)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(n)))
    wall = time.perf_counter() - t0
    samples.sort()
    return {"per_s": n / wall, "p50": statistics.median(samples), "p99": samples[int(len(samples) * 0.99) - 1]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--households", type=int, default=500)
    parser.add_argument("--reservations", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()

    from bench.common import drop_database, fresh_database, record

    os.environ.setdefault("LOG_LEVEL", "WARNING")
    url = fresh_database("redemption")
    os.environ["DATABASE_URL"] = url
    try:
        from sqlalchemy import create_engine

        from app.core.db import utcnow
        from app.identity.auth import Grant, Principal
        from app.identity.models import Role, User
        from app.ledger import service as ledger
        from app.ledger.verify import verify
        from app.places.models import Building, Community, Compound, Household, Street
        from app.places.service import new_public_code
        from app.rewards import consent, flows
        from app.rewards.models import FulfilRequest, ReserveRequest, RewardItem

        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1), pool_size=args.threads + 4, max_overflow=0)
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
            households = [
                Household(community_id=community.id, building_id=building.id, door_plate=str(100 + i), public_code=new_public_code(s))
                for i in range(args.households)
            ]
            s.add_all(households)
            clerk_user = User(username="bench-clerk")
            hot = RewardItem(community_id=community.id, name="环保袋", price_points=10, stock=args.reservations * 2)
            open_ = RewardItem(community_id=community.id, name="乐修匠上门维修", kind="service", price_points=10, stock=None)
            s.add_all([clerk_user, hot, open_])
            s.commit()
            ledger.post_credits(
                s,
                [ledger.Credit(community.id, h.id, 100_000, "checkin", f"bench:{uuid.uuid4().hex}", "基准", utcnow()) for h in households],
            )
            s.commit()
        clerk = Principal(user_id=clerk_user.id, grants=(Grant(Role.clerk, community.id),))
        held: list[int] = []

        def reserve(item_id):
            def go(i):
                h = households[i % len(households)]
                with Session(engine, expire_on_commit=False) as s:
                    r = flows.reserve(s, Principal(user_id=clerk_user.id, household_ids=(h.id,)), h.id, ReserveRequest(item_id=item_id, idempotency_key=uuid.uuid4().hex))
                held.append(r.id)

            return go

        def fulfil(i):
            rid = held[i]
            with Session(engine, expire_on_commit=False) as s:
                from app.rewards.models import Redemption

                hid = s.get(Redemption, rid).household_id
                flows.fulfil(s, clerk, rid, FulfilRequest(consent_code=consent.issue_code(hid).code))

        _run(reserve(open_.id), args.threads * 4, args.threads)  # warm up connections and statement caches
        figures = {
            "reserve, unlimited item": _run(reserve(open_.id), args.reservations, args.threads),
            "reserve, one hot item (shared stock row)": _run(reserve(hot.id), args.reservations, args.threads),
            "reserve, one hot item, 1 thread": _run(reserve(hot.id), args.reservations // 4, 1),
        }
        figures["fulfil with a consent code"] = _run(fulfil, len(held), args.threads)
        with Session(engine) as s:
            report = verify(s, community.id)
        lines = [
            f"{args.households} households, {args.reservations} reservations per item, {args.threads} threads (own connections).",
            "",
            "| operation | per second | p50 (ms) | p99 (ms) |",
            "|---|---|---|---|",
            *[f"| {k} | {v['per_s']:.0f} | {v['p50']:.1f} | {v['p99']:.1f} |" for k, v in figures.items()],
            "",
            f"ledger verify after the run: {'clean' if report.clean else 'NOT CLEAN'}",
        ]
        record("redemption", "Redemptions on an exchange day (rewards flows, PostgreSQL)", lines,
               f"reserve {figures['reserve, unlimited item']['per_s']:.0f}/s, hot item "
               f"{figures['reserve, one hot item (shared stock row)']['per_s']:.0f}/s, fulfil "
               f"{figures['fulfil with a consent code']['per_s']:.0f}/s; ledger verify {'clean' if report.clean else 'NOT CLEAN'}")
        engine.dispose()
    finally:
        from app.core.db import get_engine

        get_engine().dispose()
        drop_database(url)


if __name__ == "__main__":
    main()
