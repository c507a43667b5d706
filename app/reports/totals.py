"""Point totals per household for a period: one aggregate query over the ledger, read as a stream.

Opening balance = the account's balance minus everything that occurred since the period began
(reads only the recent journal, not the whole history); closing = opening + the period's net.
A correction counts under the source and at the time of the entry it reverses, so a check-in
scanned by mistake and reversed later leaves no trace in any period (as in the passbook's totals),
and a reversed redemption lowers "redeemed".
Households are identified by compound, building, unit and door plate only: never name or phone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import BigInteger, Select, and_, case, cast, func, literal, select
from sqlalchemy.orm import aliased
from sqlmodel import Session

from app.ledger.models import JournalEntry, LedgerAccount, Posting
from app.places.models import Building, Community, Compound, Household

E = JournalEntry.__table__
ORIG = aliased(JournalEntry.__table__, name="orig")
_CORRECTION = aliased(JournalEntry.__table__, name="correction")
REVERSED = select(_CORRECTION.c.reverses_entry_id).where(_CORRECTION.c.reverses_entry_id.is_not(None))
P = Posting.__table__
A = LedgerAccount.__table__
ACC = aliased(LedgerAccount.__table__, name="acc")
H = Household.__table__
B = Building.__table__
CP = Compound.__table__
C = Community.__table__

# Earning sources, in column order, with their Chinese headers.
EARN_SOURCES: tuple[tuple[str, str], ...] = (
    ("checkin", "桶边打卡"),
    ("compost", "堆肥"),
    ("recycling", "资源回收日"),
    ("volunteer", "志愿服务"),
    ("challenge", "打卡挑战"),
    ("voucher", "积分支票"),
    ("adjustment", "人工调整"),
)
# Waste categories the reports know, with their Chinese names (厨余, 有害, 可回收物, 其他).
CATEGORIES: tuple[tuple[str, str], ...] = (
    ("kitchen", "厨余"),
    ("recyclable", "可回收物"),
    ("hazardous", "有害垃圾"),
    ("other", "其他垃圾"),
)
# Recycling-day category codes that are hazardous waste; every other recycling code is a recyclable.
HAZARDOUS_CODES = ("hazardous", "battery", "batteries", "lamp", "medicine", "电池", "有害")


def category_group(category):
    """SQL: map an entry's category (check-in category or recycling code) to one of CATEGORIES."""
    return case(
        (category == "kitchen", literal("kitchen")),
        (category.in_(HAZARDOUS_CODES), literal("hazardous")),
        (category == "other", literal("other")),
        (category.is_(None), literal(None)),
        else_=literal("recyclable"),
    )


def category_group_py(category: str | None) -> str | None:
    if category is None:
        return None
    if category == "kitchen":
        return "kitchen"
    if category in HAZARDOUS_CODES:
        return "hazardous"
    if category == "other":
        return "other"
    return "recyclable"


FIGURES: tuple[str, ...] = (
    ("opening",)
    + tuple(s for s, _ in EARN_SOURCES)
    + ("earned", "redeemed", "expired", "closing")
    + tuple(f"g_{c}" for c, _ in CATEGORIES)
)
HEADERS_ZH: dict[str, str] = {
    "opening": "期初积分",
    **{s: f"获得·{zh}" for s, zh in EARN_SOURCES},
    "earned": "获得合计",
    "redeemed": "兑换消耗",
    "expired": "过期清零",
    "closing": "期末积分",
    **{f"g_{c}": f"{zh}减量(kg)" for c, zh in CATEGORIES},
}


def totals_query(community_ids: tuple[int, ...], lo: datetime, hi: datetime) -> Select:
    """One row per household of the communities, in community → building → unit → door plate order."""
    known = tuple(s for s, _ in EARN_SOURCES) + ("redemption", "expiry")
    source = func.coalesce(ORIG.c.source, E.c.source)
    # Unknown sources (future ones) count as adjustments so closing = opening + earned − redeemed − expired.
    source = case((source.in_(known), source), else_=literal("adjustment"))
    occurred = func.coalesce(ORIG.c.occurred_at, E.c.occurred_at)
    in_period = occurred < hi

    def points(src: str):
        return func.sum(case((and_(in_period, source == src), P.c.amount), else_=0))

    group = category_group(E.c.category)

    def grams(cat: str):
        return func.sum(case((and_(in_period, group == cat), E.c.quantity_g), else_=0))

    flows = (
        select(
            A.c.household_id.label("household_id"),
            func.sum(P.c.amount).label("since_lo"),
            *(points(s).label(s) for s, _ in EARN_SOURCES),
            points("redemption").label("redemption"),
            points("expiry").label("expiry"),
            *(grams(c).label(f"g_{c}") for c, _ in CATEGORIES),
        )
        .select_from(
            A.join(P, P.c.account_id == A.c.id)
            .join(E, E.c.id == P.c.entry_id)
            # Only entries that were reversed can be an original: that small set (read through the index
            # on reverses_entry_id) is what the join hashes, not the whole journal.
            .outerjoin(ORIG, and_(ORIG.c.id == E.c.reverses_entry_id, ORIG.c.id.in_(REVERSED)))
        )
        # A correction is never earlier than what it reverses: the plain bound keeps the index usable.
        .where(A.c.community_id.in_(community_ids), A.c.household_id.is_not(None), E.c.occurred_at >= lo, occurred >= lo)
        .group_by(A.c.household_id)
        .subquery("flows")
    )
    # Sums come back as integers on both databases (PostgreSQL's sum(bigint) is numeric).
    z = lambda col: cast(func.coalesce(col, 0), BigInteger)  # noqa: E731
    earned = sum((z(flows.c[s]) for s, _ in EARN_SOURCES), start=literal(0))
    net = earned + z(flows.c.redemption) + z(flows.c.expiry)
    opening = z(ACC.c.balance) - z(flows.c.since_lo)
    return (
        select(
            C.c.id.label("community_id"),
            C.c.name.label("community"),
            CP.c.name.label("compound"),
            B.c.id.label("building_id"),
            B.c.name.label("building"),
            H.c.unit.label("unit"),
            H.c.door_plate.label("door_plate"),
            opening.label("opening"),
            *(z(flows.c[s]).label(s) for s, _ in EARN_SOURCES),
            earned.label("earned"),
            (-z(flows.c.redemption)).label("redeemed"),
            (-z(flows.c.expiry)).label("expired"),
            (opening + net).label("closing"),
            *(z(flows.c[f"g_{c}"]).label(f"g_{c}") for c, _ in CATEGORIES),
        )
        .select_from(
            H.join(B, B.c.id == H.c.building_id)
            .join(CP, CP.c.id == B.c.compound_id)
            .join(C, C.c.id == H.c.community_id)
            .outerjoin(ACC, ACC.c.household_id == H.c.id)
            .outerjoin(flows, flows.c.household_id == H.c.id)
        )
        .where(H.c.community_id.in_(community_ids))
        .order_by(
            C.c.id,
            func.length(CP.c.name), CP.c.name,
            func.length(B.c.name), B.c.name, B.c.id,
            func.length(H.c.unit), H.c.unit,
            func.length(H.c.door_plate), H.c.door_plate,
        )
    )


# Household rows carry 7 identifying columns, then the figures in FIGURES order.
FIRST_FIGURE = 7


@dataclass
class Subtotal:
    """Sums of every figure over a building or a community, and how many households they cover."""

    label: tuple[str, ...]
    households: int = 0
    values: list[int] = field(default_factory=lambda: [0] * len(FIGURES))

    def add(self, values, households: int = 1) -> None:
        self.households += households
        self.values = [a + b for a, b in zip(self.values, values, strict=True)]

    @property
    def sums(self) -> dict[str, int]:
        return dict(zip(FIGURES, self.values, strict=True))


def stream_rows(session: Session, community_ids: tuple[int, ...], lo: datetime, hi: datetime, batch: int = 2000) -> Iterator:
    """Household rows read through a server-side cursor on PostgreSQL: memory stays flat."""
    if not community_ids:
        return iter(())
    stmt = totals_query(community_ids, lo, hi).execution_options(yield_per=batch, stream_results=True)
    return iter(session.execute(stmt))
