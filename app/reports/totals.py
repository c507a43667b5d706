"""Point totals per household for a period, with building and community subtotals: one statement over
the ledger, read as a stream in listing order.

The points measures are those of app.reports.measures.points. Opening balance = the household's
points (spendable and held) less everything that occurred since the period began (reads only the
recent journal, not the whole history); closing = opening + earned − redeemed (hand-overs) − expired,
and the points held by open reservations at the close are shown apart. A correction counts under the
source of the entry it reverses but at its own time, so a closed period never changes.
Households are identified by compound, building, unit and door plate only: never name or phone.
On PostgreSQL a period of whole months reads the entries up to the roll-up's watermark from its monthly
rows (reports.rollup) and only the later ones from the journal.
Kilograms are not the ledger's: they are the waste measures' (app.reports.measures.waste), per household
(a cheque it claimed included), and the walk-ins whose cheque nobody claimed have a row per community,
so the total is the monthly report's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import IntEnum

from sqlalchemy import (
    BigInteger,
    Float,
    Integer,
    Select,
    String,
    case,
    cast,
    func,
    literal_column,
    null,
    select,
    union_all,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased
from sqlalchemy.sql.functions import FunctionElement

from app.kit.cells import neutral_sql
from app.ledger.models import LedgerAccount
from app.places.models import Building, Community, Compound, Household
from app.recycling.groups import GROUPS, STANDARD_NAMES
from app.reports.measures import waste
from app.reports.measures.points import (
    AT,
    EARN_SOURCES,
    ORIG,  # noqa: F401 - other report modules import it from here
    OWNED,
    OWNER,
    POINT_FLOWS,
    POSTINGS,
    UNBOUNDED_FLOWS,
    A,
    E,
    P,  # noqa: F401 - other report modules import it from here
    household_flows,
)
from app.reports.models import HouseholdMonthPoints

ACC = aliased(LedgerAccount.__table__, name="acc")
H = Household.__table__
B = Building.__table__
CP = Compound.__table__
C = Community.__table__

# Waste groups (GB/T 19095-2019, app.recycling.groups) in column order, with their short Chinese names.
CATEGORIES: tuple[tuple[str, str], ...] = tuple(
    (g.value, {"kitchen": "厨余"}.get(g.value, STANDARD_NAMES[g])) for g in GROUPS
)


FIGURES: tuple[str, ...] = (
    ("opening",)
    + tuple(s for s, _ in EARN_SOURCES)
    + ("earned", "redeemed", "expired", "closing", "held")
    + tuple(f"g_{c}" for c, _ in CATEGORIES)
)
HEADERS_ZH: dict[str, str] = {
    "opening": "期初积分",
    **{s: f"获得·{zh}" for s, zh in EARN_SOURCES},
    "earned": "获得合计",
    "redeemed": "兑换消耗",
    "expired": "过期清零",
    "closing": "期末积分",
    "held": "其中预约冻结",
    **{f"g_{c}": f"{zh}减量(kg)" for c, zh in CATEGORIES},
}
GRAM_FIGURES = frozenset(f"g_{c}" for c, _ in CATEGORIES)


def _natural(*columns) -> list:
    """Sort keys that put 2号楼 before 10号楼: shorter names first, then by name."""
    return [key for col in columns for key in (func.length(col), col)]


# The flow columns after the household, in order (the roll-up table has them too, `since_lo` as `net`):
# the points flows (measures.points). Kilograms are not the ledger's: the export reads them from the
# records (app.reports.measures.waste).
FLOWS = POINT_FLOWS


def flow_columns(in_period=None) -> list:
    """The sums of a group of OWNED postings, labelled as FLOWS: the points flows of
    measures.points.household_flows (the one definition of each), those `in_period` (all when None)."""
    return household_flows(in_period)


@dataclass(frozen=True)
class Rollup:
    """The roll-up to read for a period made of whole months (reports.rollup): its time zone, its
    watermark as read in the export's own snapshot, and the period's months [first_month, end_month)."""

    timezone: str
    watermark: int
    first_month: date
    end_month: date


def household_totals(community_ids: tuple[int, ...], lo: datetime, hi: datetime, rollup: Rollup | None = None) -> Select:
    """One row per household of the communities (unordered): its place in the listing (community →
    compound → building → unit → door plate, names in natural order), ids, names, then FIGURES (grams for kg).

    With a roll-up, the entries up to its watermark are read from its monthly rows and only those
    after it from the journal: the same sums (tests/reports/test_point_totals_rollup.py)."""
    live = (
        select(OWNER.label("household_id"), *flow_columns(AT < hi))
        .select_from(POSTINGS)
        # An entry posts to accounts of its own community (as `ledger verify` per community assumes):
        # bounding the entries too spares a community's export the postings of every other community.
        .where(A.c.community_id.in_(community_ids), OWNED, AT >= lo, E.c.community_id.in_(community_ids))
        .group_by(OWNER)
    )
    if rollup is None:
        flows = live.subquery("flows")
    else:
        R = HouseholdMonthPoints.__table__  # noqa: N806
        in_period = R.c.month < rollup.end_month
        rolled = (
            select(R.c.household_id, R.c.net.label("since_lo"),
                   *(R.c[f] if f in UNBOUNDED_FLOWS else case((in_period, R.c[f]), else_=literal_column("0")).label(f)
                     for f in FLOWS[1:]))
            .where(R.c.timezone == rollup.timezone, R.c.community_id.in_(community_ids), R.c.month >= rollup.first_month)
        )
        # The live part's sums as bigint, like the roll-up's columns: summing them again stays in integers.
        after = live.where(E.c.id > rollup.watermark).subquery("after_watermark")
        live = select(after.c.household_id, *(cast(after.c[f], BigInteger).label(f) for f in FLOWS))
        both = union_all(live, rolled).subquery("both_parts")
        flows = (
            select(both.c.household_id, *(func.sum(both.c[f]).label(f) for f in FLOWS))
            .group_by(both.c.household_id)
            .subquery("flows")
        )
    # Kilograms from the records, not the ledger: the reports' waste measure (cheques claimed included).
    weighed = waste.household_grams_select(community_ids, lo, hi).subquery("weighed")
    # Sums come back as integers on both databases (PostgreSQL's sum(bigint) is numeric).
    z = lambda col: cast(func.coalesce(col, 0), BigInteger)  # noqa: E731
    earned = sum((z(flows.c[s]) for s, _ in EARN_SOURCES), start=literal_column("0"))
    net = earned + z(flows.c.redemption) + z(flows.c.expiry)
    # Opening and closing are the household's own points, held ones included; held shown apart.
    opening_held = z(ACC.c.held) - z(flows.c.held_net)
    opening = z(ACC.c.balance) - z(flows.c.since_lo) + opening_held
    # Each household's place in the listing, ranked over the few columns it needs: sorting the wide result
    # rows on ten keys instead cost PostgreSQL more than the rollup (every comparison unpacks both rows).
    place = (
        select(H.c.id.label("household_id"), func.row_number().over(order_by=(
            H.c.community_id, *_natural(CP.c.name, B.c.name), B.c.id, *_natural(H.c.unit, H.c.door_plate))).label("place"))
        .select_from(H.join(B, B.c.id == H.c.building_id).join(CP, CP.c.id == B.c.compound_id))
        .where(H.c.community_id.in_(community_ids))
        .subquery("place")
    )
    return (
        select(
            place.c.place,
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
            (opening_held + z(flows.c.held)).label("held"),
            *(z(weighed.c[f"g_{c}"]).label(f"g_{c}") for c, _ in CATEGORIES),
        )
        .select_from(
            H.join(B, B.c.id == H.c.building_id)
            .join(CP, CP.c.id == B.c.compound_id)
            .join(C, C.c.id == H.c.community_id)
            .outerjoin(ACC, ACC.c.household_id == H.c.id)
            .outerjoin(flows, flows.c.household_id == H.c.id)
            .outerjoin(weighed, weighed.c.household_id == H.c.id)
            .join(place, place.c.household_id == H.c.id)
        )
    )


def totals_query(community_ids: tuple[int, ...], lo: datetime, hi: datetime, rollup: Rollup | None = None) -> Select:
    """The household rows alone, in listing order."""
    t = household_totals(community_ids, lo, hi, rollup).subquery("household_totals")
    return select(*(c for c in t.c if c.name != "place")).order_by(t.c.place)


class Level(IntEnum):
    """What a report row is: a household, or the subtotal of a building, the walk-ins of a community whose
    cheques no household has claimed (their kilograms, under no household), a community's total, everything."""

    household = 0
    building = 1
    community = 2
    total = 3
    walk_ins = 4


LEVEL_ZH = {Level.household: "户", Level.building: "楼栋小计", Level.walk_ins: "走访居民（积分支票未领取）",
            Level.community: "社区合计", Level.total: "总计"}
# Where each level's rows sort after the last household they cover.
_RANK = {Level.household: 0, Level.building: 1, Level.walk_ins: 2, Level.community: 3, Level.total: 4}
ID_COLUMNS = ("community", "compound", "building", "unit", "door_plate")


class kg_text(FunctionElement):  # noqa: N801 - a SQL function, named like one
    """Grams as kilograms with three decimals, as text ('1.500')."""

    type = String()
    inherit_cache = True


@compiles(kg_text)
def _kg_text(element, compiler, **kw):
    return f"CAST(CAST({compiler.process(element.clauses, **kw)} AS NUMERIC) / 1000 AS NUMERIC(20, 3))::text"


def report_query(community_ids: tuple[int, ...], lo: datetime, hi: datetime, *, as_csv: bool = False,
                 rollup: Rollup | None = None) -> Select:
    """Household rows with the building and community subtotals and the grand total, each subtotal right
    after what it covers, all from one statement (the database sums them; nothing is held in Python).

    With as_csv, the CSV's columns: the level's Chinese label, community, compound, building, unit, door
    plate (empty where a subtotal covers several), households, then FIGURES with kg as text with three
    decimals, so that PostgreSQL's COPY writes the lines itself. Otherwise the household sheet's columns
    first — the five ids, then FIGURES with kg as numbers — then households and the Level."""
    t = household_totals(community_ids, lo, hi, rollup).cte("household_totals")

    def summed(rows, households, *, last):
        # A subtotal sorts right after the last row it covers: households at 5 × place, a building's
        # subtotal at 5 × its last place + 1, a community's walk-ins + 2, its total + 3, the total + 4. One
        # integer key: sorting the wide rows on the names again cost more than all the subtotals.
        return [func.max(last).label("last"),
                cast(func.coalesce(func.sum(households), 0), BigInteger).label("households"),
                *(cast(func.coalesce(func.sum(rows.c[f]), 0), BigInteger).label(f) for f in FIGURES)]

    # Each level sums the one below it: communities add up their buildings' subtotals, not every household again.
    b_keys = (t.c.community_id, t.c.community, t.c.compound, t.c.building_id, t.c.building)
    b = select(*b_keys, *summed(t, literal_column("1"), last=t.c.place)).group_by(*b_keys).cte("building_totals")
    # Walk-ins whose cheque nobody claimed: their kilograms count in their community's total, under no household.
    walk = waste.walk_in_grams_select(community_ids, lo, hi).subquery("walk_in_grams")
    w = (select(walk.c.community_id, C.c.name.label("community"), literal_column("0", BigInteger).label("households"),
                *((cast(func.coalesce(walk.c[f], 0), BigInteger) if f in GRAM_FIGURES else literal_column("0", BigInteger)).label(f)
                  for f in FIGURES))
         .join(C, C.c.id == walk.c.community_id).cte("walk_in_totals"))
    parts_c = union_all(
        select(b.c.community_id, b.c.community, b.c.last, b.c.households, *(b.c[f] for f in FIGURES)),
        select(w.c.community_id, w.c.community, cast(null(), BigInteger).label("last"), w.c.households, *(w.c[f] for f in FIGURES)),
    ).subquery("community_parts")
    c = (select(parts_c.c.community_id, parts_c.c.community, *summed(parts_c, parts_c.c.households, last=parts_c.c.last))
         .group_by(parts_c.c.community_id, parts_c.c.community).cte("community_totals"))
    wc = select(w, c.c.last).join(c, c.c.community_id == w.c.community_id).subquery("walk_in_rows")
    every = select(*summed(c, c.c.households, last=c.c.last)).subquery("every_total")

    def rows(lv: Level, src, last, households, *ids):
        return select(literal_column(str(int(lv)), Integer).label("level"), (last * 5 + _RANK[lv]).label("position"),
                      *ids, *(null() for _ in range(len(ID_COLUMNS) - len(ids))), households,
                      *(src.c[f] for f in FIGURES))

    parts = union_all(
        rows(Level.household, t, t.c.place, literal_column("1", BigInteger).label("households"), *(t.c[k] for k in ID_COLUMNS)),
        rows(Level.building, b, b.c.last, b.c.households, b.c.community, b.c.compound, b.c.building),
        rows(Level.walk_ins, wc, wc.c.last, wc.c.households, wc.c.community),
        rows(Level.community, c, c.c.last, c.c.households, c.c.community),
        rows(Level.total, every, every.c.last, every.c.households),
    ).subquery("report")
    r = parts.c
    if as_csv:
        label = case(*((r.level == int(lv), zh) for lv, zh in LEVEL_ZH.items())).label("level")
        figures = [kg_text(r[f]).label(f) if f in GRAM_FIGURES else r[f] for f in FIGURES]
        columns = [label, *(neutral_sql(r[c]).label(c) for c in ID_COLUMNS), r.households, *figures]
    else:
        figures = [(cast(r[f], Float) / 1000).label(f) if f in GRAM_FIGURES else r[f] for f in FIGURES]
        columns = [*(r[c] for c in ID_COLUMNS), *figures, r.households, r.level]
    return select(*columns).order_by(r.position)
