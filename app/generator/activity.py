"""Replay months of a community's life through the services: check-ins, compost, exchange days.

Each simulated moment runs under `simulated_clock`, so every service applies its own rules (drop-off
windows, one credit per household per window, points rules, bin states, stock and consent) and
every point moves through the ledger as it would live: `jianfei ledger verify` passes on the result.
Days are replayed in order and all activities of a day together, so balances are what they were.

Behaviour is seeded: households are engaged, regular, occasional or never take part; they join over
the first months (the adoption ramp the seeds describe); most prefer one window; accuracy starts at
70–90 % and improves as habits form (正确率 toward 95 %, 002 L105). A few households feed the
compost bins, which fill, close, cure 20 days and are opened (开箱) with the compost shared among
the feeders, most of whom collect it (000 L707). On the 15th of each month an exchange day (积分兑换)
lets residents spend points at the counter with the consent code of their mini-program.
"""

from __future__ import annotations

import gc
import random
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pydantic import TypeAdapter
from sqlmodel import Session, select

from app.checkins import service as checkins
from app.checkins.models import CheckResult, DropWindowCreate, IncorrectReason, ScanIn, StationCreate
from app.compost import service as compost
from app.compost.models import CompostBinCreate, CompostDropCreate, CompostMethod, CompostSiteCreate
from app.core import clock
from app.core.db import simulated_clock
from app.identity.auth import Grant, Principal
from app.identity.models import HouseholdMember, Role, User
from app.kit.errors import DomainError
from app.ledger import service as ledger
from app.places.models import Community, Compound, Household
from app.places.service import qr_payload
from app.recycling import service as recycling
from app.recycling.models import DestinationCreate, DestinationKind, RateUnit, ScheduleCreate, WeighInCreate
from app.recycling.routes import RateIn
from app.rewards import consent
from app.rewards import flows as rewards
from app.rewards.models import CounterLine, CounterRequest, RewardItemCreate, RewardKind

WINDOWS = (("早间", time(7, 0), time(9, 0)), ("晚间", time(18, 0), time(21, 0)))
KINDS = ((0.35, 0.85), (0.30, 0.45), (0.15, 0.12), (0.20, 0.0))  # (share, daily chance): engaged … never
REASONS = {
    IncorrectReason.bag_not_removed: 40,
    IncorrectReason.mixed: 25,
    IncorrectReason.contaminated: 15,
    IncorrectReason.liquid: 10,
    IncorrectReason.wrong_bin: 5,
    IncorrectReason.other: 5,
}
COMPOST_SHARE = 0.08  # households that bring kitchen waste to the compost site
FILL_DAYS = 10  # a bin takes about ten days of its feeders' waste before it is closed
BIN_COUNT = 3
EXCHANGE_DAY = 15  # of each month
EXCHANGE_QUEUE = 150  # residents served per half hour at the counter
RECYCLING_SHARE = 0.15  # taking-part households that bring something on a recycling day
RECYCLING = (  # code, name, unit, points, amount range (grams or items), destination
    ("paper", "废纸", RateUnit.kg, 10, (500, 5000), ("再生资源回收公司", DestinationKind.collector)),
    ("milk_carton", "牛奶盒", RateUnit.item, 2, (5, 30), ("牛奶盒回收公益项目", DestinationKind.charity)),
    ("battery", "废电池", RateUnit.item, 5, (1, 6), ("有害垃圾专业处置", DestinationKind.city)),
    ("clothes", "旧衣物", RateUnit.kg, 20, (1000, 4000), ("旧衣物公益捐赠", DestinationKind.charity)),
)
REWARDS = (  # (name, kind, points, stock)
    ("环保购物袋", RewardKind.goods, 150, 2000),
    ("洗洁精", RewardKind.goods, 300, 1000),
    ("厨余沥水篮", RewardKind.goods, 500, 500),
    ("乐修匠上门维修", RewardKind.service, 800, None),
)

Progress = Callable[[int, int], None]
_SCANS = TypeAdapter(list[ScanIn])


@dataclass
class ActivitySummary:
    days: int = 0
    scans: int = 0
    credited: int = 0
    checkin_points: int = 0
    compost_drops: int = 0
    compost_points: int = 0
    bins_closed: int = 0
    harvests: int = 0
    compost_collected: int = 0
    redemptions: int = 0
    points_spent: int = 0
    recycling_days: int = 0
    weigh_ins: int = 0
    recycling_points: int = 0


@dataclass
class Habit:
    household_id: int
    payload: str
    chance: float
    joins: int  # day index from which the household takes part
    morning: float  # probability of using the morning window
    accuracy: float  # at the start; improves over the period


def _principal(session: Session, username: str, role: Role, community_id: int) -> Principal:
    user_id = session.exec(select(User.id).where(User.username == username)).one()
    return Principal(user_id=user_id, grants=(Grant(role, community_id=community_id),))


class CommunityReplay:
    def __init__(self, session: Session, *, seed: int, community_id: int, staff: dict[str, list[str]], days: int, today: date | None):
        self.s = session
        self.seed = seed
        self.community_id = community_id
        community = session.get(Community, community_id)
        self.tz = ZoneInfo(community.timezone)
        self.name = community.name
        self.days = days
        self.first = (today or clock.now().astimezone(self.tz).date()) - timedelta(days=days)
        # Seeded by the community's name (unique in a plan), not its id: the same seed replays the same days in any database.
        self.rng = random.Random(f"{seed}/{community.name}")
        self.committee = _principal(session, staff["committee"][0], Role.committee, community_id)
        self.volunteer = _principal(session, staff["volunteer"][0], Role.volunteer, community_id)
        self.keeper = _principal(session, staff["keeper"][0], Role.compost_keeper, community_id)
        self.clerk = _principal(session, staff["clerk"][0], Role.clerk, community_id)
        self.summary = ActivitySummary(days=days)

    def at(self, day: date, t: time) -> datetime:
        return datetime.combine(day, t, self.tz)

    # --- day one: stations, windows, compost bins, the reward catalogue --------------------------

    def setup(self) -> None:
        s, rng = self.s, self.rng
        with simulated_clock(self.at(self.first, time(6, 0))):
            compounds = s.exec(select(Compound).where(Compound.community_id == self.community_id).order_by(Compound.id)).all()
            self.stations = [
                checkins.create_station(s, self.committee, self.community_id, StationCreate(name=f"{c.name}投放点", compound_id=c.id)).id
                for c in compounds
            ]
            for name, starts, ends in WINDOWS:
                checkins.create_window(s, self.committee, self.community_id, DropWindowCreate(name=name, start_time=starts, end_time=ends))
            site = compost.create_site(s, self.keeper, self.community_id, CompostSiteCreate(name=f"{self.name}堆肥点"))
            self.bins = [
                compost.create_bin(s, self.keeper, site.id, CompostBinCreate(name=f"{i}号箱", method=CompostMethod.box, capacity_l=200)).id
                for i in range(1, BIN_COUNT + 1)
            ]
            for code, name, unit, points, _, _ in RECYCLING:
                recycling.put_rate(s, self.committee, self.community_id, code, RateIn(name=name, unit=unit, points=points))
            # 资源回收日: the second Saturday of every month, on the square by the north gate.
            recycling.create_schedule(
                s, self.committee, self.community_id,
                ScheduleCreate(rrule="FREQ=MONTHLY;BYDAY=2SA", starts_on=self.first, start_time=time(9, 0), end_time=time(11, 30), place="北门广场"),
            )
            from app.rewards import service as reward_items

            self.items = [
                (reward_items.create_item(
                    s, self.committee, self.community_id,
                    RewardItemCreate(name=name, kind=kind, price_points=points, stock=stock, limit_per_household=2),
                ).id, points)
                for name, kind, points, stock in REWARDS
            ]
        households = list(s.exec(select(Household).where(Household.community_id == self.community_id).order_by(Household.id)).all())
        self.station_of = {h.id: self.stations[i % len(self.stations)] for i, h in enumerate(households)}
        self.habits: list[Habit] = []
        for h in households:
            chance = rng.choices([k[1] for k in KINDS], [k[0] for k in KINDS])[0]
            if chance:
                self.habits.append(Habit(h.id, qr_payload(h), chance, int(rng.random() * self.days * 0.4), rng.choice((0.85, 0.6, 0.2)), rng.uniform(0.70, 0.90)))
        self.feeders = [(h.household_id, h.payload) for h in self.habits if rng.random() < COMPOST_SHARE / 0.8]
        if not self.feeders and self.habits:  # a small community still has its compost site's regulars
            h = rng.choice(self.habits)
            self.feeders = [(h.household_id, h.payload)]
        self.fed = dict.fromkeys(self.bins, 0)
        self.ready_on: dict[int, date | None] = dict.fromkeys(self.bins)  # set while a bin cures
        # Feeders come three days a week with about 1.15 kg: a bin is full after FILL_DAYS of them.
        self.fill_g = max(5_000, len(self.feeders) * 490 * FILL_DAYS)
        members = s.exec(
            select(HouseholdMember.household_id, HouseholdMember.user_id)
            .join(Household, Household.id == HouseholdMember.household_id)
            .where(Household.community_id == self.community_id)
            .order_by(HouseholdMember.id)
        ).all()
        self.resident_of: dict[int, int] = {}
        for household_id, user_id in members:
            self.resident_of.setdefault(household_id, user_id)

    # --- one day -----------------------------------------------------------------------------

    def run_day(self, d: int) -> None:
        day = self.first + timedelta(days=d)
        self.keeper_round(day)
        self.checkins(d, day)
        self.compost_drops(day)
        self.recycling_day(day)
        if day.day == EXCHANGE_DAY:
            self.exchange(day)

    def checkins(self, d: int, day: date) -> None:
        rng = self.rng
        weekend = day.isoweekday() >= 6
        learned = d / max(self.days - 1, 1)
        reasons, weights = list(REASONS), list(REASONS.values())
        stamp = f"{day:%Y%m%d}"
        opens = [(self.at(day, starts), (ends.hour - starts.hour) * 60 - 1) for _, starts, ends in WINDOWS]
        scans: list[dict] = []
        for habit in self.habits:
            if d < habit.joins or rng.random() >= min(habit.chance + (0.05 if weekend else 0), 0.97):
                continue
            w = 0 if rng.random() < habit.morning else 1
            starts, minutes = opens[w]
            at = starts + timedelta(minutes=rng.randint(0, minutes), seconds=rng.randint(0, 59))
            correct = rng.random() < min(habit.accuracy + 0.12 * learned, 0.99)
            scans.append({
                "client_id": f"g{self.seed}-{habit.household_id}-{stamp}-{w}",
                "payload": habit.payload,
                "station_id": self.station_of[habit.household_id],
                "result": CheckResult.correct if correct else CheckResult.incorrect,
                "reasons": [] if correct else [rng.choices(reasons, weights)[0]],
                "scanned_at": at,
            })
        # The volunteers' phones sync the day's scans once the evening window has closed: one
        # set-based service call carries both windows (each scan keeps its own time and window).
        # The day's scans are validated as one list (pydantic-core: 8 µs a scan, not 13 one by one).
        with simulated_clock(self.at(day, WINDOWS[-1][2]) + timedelta(minutes=5)):
            for result in checkins.record_scans(self.s, self.volunteer, self.community_id, _SCANS.validate_python(scans)):
                self.summary.scans += 1
                if result.points:
                    self.summary.credited += 1
                    self.summary.checkin_points += result.points

    def keeper_round(self, day: date) -> None:
        """Cured bins become ready and are opened; the compost is collected; the bin starts again."""
        with simulated_clock(self.at(day, time(7, 30))):
            for bin_id in self.bins:
                # The keeper knows when each closed bin is due (the service told on closing).
                if self.ready_on.get(bin_id) is None or self.ready_on[bin_id] > day:
                    continue
                compost.mark_ready(self.s, self.keeper, bin_id)
                harvest = compost.harvest(self.s, self.keeper, bin_id, compost_g=max(self.fed[bin_id] * 3 // 10, 1))
                self.summary.harvests += 1
                # "参与堆肥的家庭都会积极来领取肥料" (000 L707): most come for their share.
                collected = [claim.id for claim in harvest.claims if self.rng.random() < 0.85]
                self.summary.compost_collected += len(compost.collect_claims(self.s, self.volunteer, harvest.id, collected))
                compost.reopen_bin(self.s, self.keeper, bin_id)
                self.fed[bin_id] = 0
                self.ready_on[bin_id] = None

    def compost_drops(self, day: date) -> None:
        """The morning's drops at the compost site, uploaded together per bin after the round."""
        rng = self.rng
        accepting = [b for b in self.bins if self.ready_on.get(b) is None]
        per_bin: dict[int, list[CompostDropCreate]] = {}
        closing: list[tuple[int, datetime]] = []
        for household_id, payload in self.feeders:
            if not accepting:
                break
            if rng.random() >= 3 / 7:  # about three times a week
                continue
            current = accepting[0]
            weight = rng.randint(300, 2000)
            at = self.at(day, time(8, 0)) + timedelta(minutes=rng.randint(0, 119))
            per_bin.setdefault(current, []).append(
                CompostDropCreate(client_id=f"gc{self.seed}-{household_id}-{day:%Y%m%d}", payload=payload, weight_g=weight, dropped_at=at)
            )
            self.fed[current] += weight
            if self.fed[current] >= self.fill_g:
                closing.append((current, at))
                accepting.pop(0)
        # The volunteer's phone uploads the site's queue after the morning round (08:00–10:00).
        with simulated_clock(self.at(day, time(10, 5))):
            for bin_id, drops in per_bin.items():
                for drop, _ in compost.record_drops(self.s, self.volunteer, bin_id, drops):
                    self.summary.compost_drops += 1
                    self.summary.compost_points += drop.points
        for bin_id, _ in closing:
            with simulated_clock(self.at(day, time(10, 10))):
                self.ready_on[bin_id] = compost.close_bin(self.s, self.keeper, bin_id).ready_on
            self.summary.bins_closed += 1

    def recycling_day(self, day: date) -> None:
        """On a scheduled recycling day, households bring things to weigh; each batch gets its 去向."""
        if day.isoweekday() != 6 or not 8 <= day.day <= 14:  # the schedule below: the second Saturday
            return
        events, _ = recycling.list_events(self.s, self.community_id, day, day, None, 10)
        rng = self.rng
        for event in events:
            if event.status != "scheduled":
                continue
            self.summary.recycling_days += 1
            totals: dict[str, int] = {}
            batch: list[WeighInCreate] = []
            for habit in self.habits:
                if rng.random() >= RECYCLING_SHARE:
                    continue
                for code, _, unit, _, (lo, hi), _ in rng.sample(RECYCLING, rng.randint(1, 2)):
                    amount = rng.randint(lo, hi)
                    batch.append(
                        WeighInCreate(
                            client_id=f"gr{self.seed}-{habit.household_id}-{day:%Y%m%d}-{code}", payload=habit.payload,
                            category=code, **({"weight_g": amount} if unit == RateUnit.kg else {"count": amount}),
                        )
                    )
                    totals[code] = totals.get(code, 0) + amount
            # The clerk's tablet uploads the morning's weigh-ins when the day closes: one service call.
            with simulated_clock(event.ends_at + timedelta(minutes=5)):
                for weigh_in, _ in recycling.record_weigh_ins(self.s, self.clerk, event.id, batch):
                    self.summary.weigh_ins += 1
                    self.summary.recycling_points += weigh_in.points
            with simulated_clock(event.ends_at + timedelta(minutes=30)):
                for code, _, unit, _, _, (where, kind) in RECYCLING:
                    if code in totals:
                        amount = {"quantity_g": totals[code]} if unit == RateUnit.kg else {"count": totals[code]}
                        recycling.add_destination(
                            self.s, self.clerk, event.id, DestinationCreate(client_id=f"gd{self.seed}-{event.id}-{code}", category=code, kind=kind, destination=where, **amount)
                        )

    def exchange(self, day: date) -> None:
        """积分兑换: residents with enough points spend some at the counter, consenting with the code
        their mini-program shows. The morning's queue goes to the rewards service in a few set-based
        calls (one per half hour of residents), each resident all or nothing as at the counter."""
        rng = self.rng
        cheapest = min(points for _, points in self.items)
        balances = ledger.balances_of(self.s, self.resident_of)
        queue: list[tuple[int, list[CounterLine]]] = []
        for household_id in self.resident_of:
            if rng.random() >= 0.6:
                continue
            balance = balances[household_id]
            if balance < cheapest:
                continue
            lines, budget = [], balance
            for item_id, points in sorted(self.items, key=lambda _: rng.random()):
                if points <= budget and len(lines) < 2:
                    lines.append(CounterLine(item_id=item_id))
                    budget -= points
            queue.append((household_id, lines))
        for start in range(0, len(queue), EXCHANGE_QUEUE):
            at = self.at(day, time(9, 0)) + timedelta(minutes=30 * (start // EXCHANGE_QUEUE))
            with simulated_clock(at):
                requests = [
                    CounterRequest(
                        consent_code=consent.issue_code(household_id).code, items=lines,
                        idempotency_key=f"gx{self.seed}-{household_id}-{day:%Y%m%d}",
                    )
                    for household_id, lines in queue[start : start + EXCHANGE_QUEUE]
                ]
                for result in rewards.counter_spend_many(self.s, self.clerk, self.community_id, requests):
                    if isinstance(result, DomainError):  # out of stock or the monthly limit: the resident leaves empty-handed
                        continue
                    self.summary.redemptions += len(result.redemptions)
                    self.summary.points_spent += result.points


def replay(
    session: Session,
    *,
    seed: int,
    community_id: int,
    staff: dict[str, list[str]],
    days: int,
    today: date | None = None,
    progress: Progress | None = None,
) -> ActivitySummary:
    """Set the community up `days` ago, then replay every day up to yesterday."""
    run = CommunityReplay(session, seed=seed, community_id=community_id, staff=staff, days=days, today=today)
    with _few_collections():
        run.setup()
        for d in range(days):
            run.run_day(d)
            if progress:
                progress(d + 1, days)
    return run.summary


@contextmanager
def _few_collections() -> Iterator[None]:
    """The garbage collector's full passes walked every object the app's imports made, again and
    again, while a replay allocates millions of short-lived rows: 40 % of the app's CPU (5.9 → 3.7 s
    for 60 days of 2,100 households). Those objects are frozen out of its passes, and young objects
    are collected less often, while replaying."""
    gc.collect()
    gc.freeze()
    threshold = gc.get_threshold()
    gc.set_threshold(50_000, 20, 20)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


def replay_engine(url: str, *, bulk_load: bool = False):
    """An engine for replaying. On PostgreSQL its sessions commit without waiting for the WAL flush
    (synchronous_commit off): a generated street is rebuilt from its seed, not restored after a
    crash, and a crash still never leaves half a transaction.

    bulk_load=True also skips the database's per-row foreign-key checks, as pg_restore's
    --disable-triggers does (session_replication_role = replica; needs a superuser, else it is left
    out with a warning): 40 % of PostgreSQL's CPU in a replay went to re-reading, for every row
    written, the rows its ids point at, ids the services have just read or written. Unique keys and
    check constraints (one entry per key, no negative balance) still hold, and `ledger verify`
    checks the result; the ledger's append-only triggers are off too, which the services never test
    (they only insert journal rows)."""
    from app.core.db import make_engine

    engine = make_engine(url)
    from sqlalchemy import event

    settings = ["SET synchronous_commit TO off"] + (["SET session_replication_role TO replica"] if bulk_load else [])

    @event.listens_for(engine, "connect")
    def _settings(dbapi_conn, _record) -> None:
        for statement in settings:
            try:
                with dbapi_conn.cursor() as cur:
                    cur.execute(statement)
                dbapi_conn.commit()
            except Exception as exc:  # noqa: BLE001 - a setting this account may not change: go on without it
                dbapi_conn.rollback()
                warnings.warn(f"{statement}: {exc}", stacklevel=1)

    return engine


def _replay_one(url: str, seed: int, community_id: int, staff: dict[str, list[str]], days: int, today: date, bulk_load: bool) -> ActivitySummary:
    """One community on its own engine (in a worker process nothing is shared with the parent)."""
    engine = replay_engine(url, bulk_load=bulk_load)
    try:
        with Session(engine, expire_on_commit=False) as session:
            return replay(session, seed=seed, community_id=community_id, staff=staff, days=days, today=today)
    finally:
        engine.dispose()


def replay_street(
    url: str,
    communities: list[tuple[int, dict[str, list[str]]]],
    *,
    seed: int,
    days: int,
    today: date,
    workers: int = 2,
    bulk_load: bool = False,
    done: Callable[[int, ActivitySummary], None] | None = None,
) -> dict[int, ActivitySummary]:
    """Replay several communities, `workers` at a time in separate processes (one at a time in
    this process with workers=1).

    Communities share no rows a replay writes (their own households, accounts, bins, events), and
    each draws from its own seeded generator, so the result is the same in any order or interleaving.
    bulk_load: see `replay_engine`.
    """
    out: dict[int, ActivitySummary] = {}
    if workers <= 1:
        for cid, staff in communities:
            out[cid] = _replay_one(url, seed, cid, staff, days, today, bulk_load)
            if done:
                done(cid, out[cid])
        return out
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(_replay_one, url, seed, cid, staff, days, today, bulk_load): cid for cid, staff in communities}
        for future in as_completed(futures):
            cid = futures[future]
            out[cid] = future.result()
            if done:
                done(cid, out[cid])
    return out
