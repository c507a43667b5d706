"""Quantities of waste and the households taking part: the one definition every place that shows them
reads (the monthly report, the point-totals export, the passbook's totals, the dashboard, a recycling
day's totals), and the records behind each figure (drill-down).

Kilograms diverted (垃圾减量) are what was weighed or dropped, never points: recycling-day weigh-ins
(a walk-in's included; a weigh-in earning 0 points, or cut by the daily cap, weighs what it weighs),
compost drops, and check-ins graded correct that carry a weight (an incorrectly sorted bag is not
sorted waste), each less its reversals (rules.not_reversed), a reversal counting when it is made (a
closed month never changes: see `records`). A walk-in's weigh-in paid with a points
cheque belongs to the household that claimed the cheque, and counts once: the weigh-in is the record,
the cheque only moves points. A weigh-in counts at its recycling day's start (one day, one month,
whenever its upload arrived), a drop at its drop time, a check-in at its scan.

Each record's group (GB/T 19095-2019) is its category's: a weigh-in's from the community's rate
table (`recycling_rate.waste_group`, set by the committee), else the code's default
(app.recycling.groups); compost is kitchen waste; a check-in's category is a group.

Participating households (参与家庭): households with at least one act in the period, not reversed —
an accepted check-in of any grade, a compost drop, a weigh-in (their own, or a cheque they claimed),
a challenge day.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Integer,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    null,
    or_,
    select,
    true,
    tuple_,
    union_all,
)
from sqlmodel import Field, Session, SQLModel

from app.activities.models import Challenge, ChallengeDay, Enrolment
from app.checkins.models import CATEGORY_ZH, CheckIn
from app.compost.models import CompostDrop
from app.kit.errors import BadRequest
from app.kit.pagination import MAX_LIMIT, decode_cursor, encode_cursor
from app.places.models import Building, Community, Compound, Household
from app.recycling.groups import DEFAULT_GROUPS, GROUPS, STANDARD_NAMES, WasteGroup
from app.recycling.models import RecyclingEvent, RecyclingRate, WeighIn
from app.reports.measures.detail import Drilldown, col
from app.rules.models import ActReversal
from app.rules.service import not_reversed
from app.vouchers.models import Voucher

W = WeighIn.__table__
EV = RecyclingEvent.__table__
RATE = RecyclingRate.__table__
V = Voucher.__table__
D = CompostDrop.__table__
CK = CheckIn.__table__
CD = ChallengeDay.__table__
EN = Enrolment.__table__
CH = Challenge.__table__
H = Household.__table__
B = Building.__table__
CP = Compound.__table__
C = Community.__table__
RV = ActReversal.__table__

KIND_ZH = {"weigh_in": "回收日称重", "compost_drop": "堆肥投放", "checkin": "桶边督导", "challenge_day": "打卡挑战"}


class WasteMeasure(StrEnum):
    """The measures this module defines, by the key the monthly report gives their figures."""

    waste_reduced_kg = "waste_reduced_kg"
    waste_kitchen_kg = "waste_kitchen_kg"
    waste_recyclable_kg = "waste_recyclable_kg"
    waste_hazardous_kg = "waste_hazardous_kg"
    waste_other_kg = "waste_other_kg"
    participating_households = "participating_households"


WASTE_MEASURES: tuple[WasteMeasure, ...] = tuple(WasteMeasure)

# Each measure's definition as the report states it (说明).
_KG = ("来自回收日称重（含走访居民以积分支票计分的称重、0 分和超出每日积分上限的称重）、堆肥投放和带重量且分类正确的桶边督导记录，"
       "不由积分推算。冲正计于冲正之时：当月冲正的记录不计；此前月份的记录在本月冲正，从本月减去（已出的月报不变）。走访居民的积分支票被住户领取后计入该住户，只计一次。称重计入回收日当天，投放和督导计入其发生时间。")
DEFINITIONS: dict[WasteMeasure, str] = {
    WasteMeasure.waste_reduced_kg: "垃圾减量合计：各类别减量之和（以克累加）。" + _KG,
    WasteMeasure.waste_kitchen_kg: "厨余垃圾减量：类别为厨余垃圾（上海称湿垃圾）的记录，堆肥投放均属此类。" + _KG,
    WasteMeasure.waste_recyclable_kg: "可回收物减量：品类属于可回收物的记录（品类所属类别由居委会设置，默认按品类代码）。" + _KG,
    WasteMeasure.waste_hazardous_kg: "有害垃圾减量：品类属于有害垃圾的记录（如电池、灯管、药品、废油漆）。" + _KG,
    WasteMeasure.waste_other_kg: "其他垃圾减量：类别为其他垃圾（上海称干垃圾）的记录。" + _KG,
    WasteMeasure.participating_households: ("参与家庭：期间内至少有一次有效记录的住户数（每户只计一次）：桶边督导（无论分类是否正确）、"
                                            "堆肥投放、回收日称重（含领取的积分支票）、打卡挑战；统计期内已冲正的记录不计（期末之后的冲正不改变已出的数字）。"),
}


def measure_group(measure: WasteMeasure) -> WasteGroup | None:
    """The group a kg measure counts (None: every group)."""
    key = measure.value.removeprefix("waste_").removesuffix("_kg")
    return WasteGroup(key) if key in WasteGroup.__members__ else None


# --- the records ----------------------------------------------------------------------------------

def _default_group(code):
    """SQL: a category code's default group (app.recycling.groups.DEFAULT_GROUPS)."""
    whens = [
        (code.in_(sorted(c for c, g in DEFAULT_GROUPS.items() if g == group)), literal(group.value))
        for group in GROUPS if group != WasteGroup.recyclable
    ]
    return case(*whens, else_=literal(WasteGroup.recyclable.value))


# A weigh-in's group: its category's in the community's rate table, else the code's default.
WEIGH_IN_GROUP = func.coalesce(RATE.c.waste_group, _default_group(W.c.category))
# The household a weigh-in belongs to: its own, or for a walk-in the one that claimed its cheque.
CLAIMED_BY = case((V.c.status == "claimed", V.c.claimed_household_id))
WEIGH_IN_HOUSEHOLD = func.coalesce(W.c.household_id, CLAIMED_BY)
_CHECKIN_NAME = case(*((CK.c.category == k, literal(v)) for k, v in CATEGORY_ZH.items()), else_=CK.c.category)


@dataclass(frozen=True)
class Among:
    """Which records: those of some communities, of one household, or of one recycling day."""

    communities: tuple[int, ...] | None = None
    household_id: int | None = None
    event_id: int | None = None


def _bounds(col, lo: datetime | None, hi: datetime | None) -> list:
    return [c for c in (col >= lo if lo is not None else None, col < hi if hi is not None else None) if c is not None]


def records(among: Among, lo: datetime | None, hi: datetime | None, *, weighed: bool, bucket: Callable | None = None):
    """The acts counted, one row each (kind, record_id, community_id, household_id, walk_in, at, category,
    category_name, waste_group, grams, count, points, reversal), between the instants [lo, hi) (None: open).

    weighed: only those counted in kilograms (a weight; check-ins graded correct); otherwise every act a
    household took part in (grams NULL where its weight does not count).

    A correction counts when it is made, as in the ledger: a record corrected within its period is left
    out; one corrected in a later period still counts in its own, and the correction, a row of that later
    period (`reversal`, at the correction's time, weight and points negated; weighed figures only), takes
    it out there. So a closed month's kilograms never change and the months add up to the cumulative.
    The periods are [lo, hi) itself, or with `bucket` (an SQL function of a time: its local month, say)
    the buckets within it, for figures grouped by them."""
    ids = list(among.communities or ()) or [-1]
    if bucket is not None:
        def same_period(record_at):
            return lambda at: bucket(at) == bucket(record_at)
    else:
        def same_period(record_at):
            return (lambda at: at < hi) if hi is not None else None
    # Corrections made within [lo, hi) of records of an earlier period (none when every correction so far
    # falls in its record's period: no lower bound and no buckets).
    corrections = weighed and (lo is not None or bucket is not None)

    def kept(act: str, id_col, at_col):
        return not_reversed(act, id_col, when=same_period(at_col))

    def undone(query, act: str, id_col, at_col):
        """The corrections of the records `query` selects: same columns, at the correction, negated."""
        later = ~same_period(at_col)(RV.c.at) if bucket is not None else at_col < lo
        negated = [
            RV.c.at.label("at") if c.name == "at" else (-c.element).label(c.name) if c.name in ("grams", "points") else
            true().label("reversal") if c.name == "reversal" else c
            for c in query.selected_columns
        ]
        return query.with_only_columns(*negated).join(RV, and_(RV.c.act == act, RV.c.act_id == id_col)) \
            .where(later, *_bounds(RV.c.at, lo, hi))

    weigh_ins = (
        select(
            literal("weigh_in").label("kind"), W.c.id.label("record_id"), W.c.community_id.label("community_id"),
            WEIGH_IN_HOUSEHOLD.label("household_id"), W.c.household_id.is_(None).label("walk_in"), EV.c.starts_at.label("at"),
            W.c.category.label("category"), func.coalesce(RATE.c.name, W.c.category).label("category_name"),
            WEIGH_IN_GROUP.label("waste_group"), W.c.weight_g.label("grams"), W.c.count.label("count"), W.c.points.label("points"),
            false().label("reversal"),
        )
        .select_from(
            W.join(EV, EV.c.id == W.c.event_id)
            .outerjoin(V, V.c.id == W.c.voucher_id)
            .outerjoin(RATE, and_(RATE.c.community_id == W.c.community_id, RATE.c.code == W.c.category))
        )
    )
    drops = select(
        literal("compost_drop").label("kind"), D.c.id.label("record_id"), D.c.community_id.label("community_id"),
        D.c.household_id.label("household_id"), false().label("walk_in"), D.c.dropped_at.label("at"),
        literal("compost").label("category"), literal("堆肥投放（厨余）").label("category_name"),
        literal(WasteGroup.kitchen.value).label("waste_group"), D.c.weight_g.label("grams"), cast(null(), Integer).label("count"),
        D.c.points.label("points"), false().label("reversal"),
    ).select_from(D)
    correct = CK.c.result == "correct"
    checkins = select(
        literal("checkin").label("kind"), CK.c.id.label("record_id"), CK.c.community_id.label("community_id"),
        CK.c.household_id.label("household_id"), false().label("walk_in"), CK.c.scanned_at.label("at"),
        CK.c.category.label("category"), _CHECKIN_NAME.label("category_name"), CK.c.category.label("waste_group"),
        case((correct, CK.c.weight_g)).label("grams"), cast(null(), Integer).label("count"), CK.c.points.label("points"),
        false().label("reversal"),
    ).select_from(CK).where(CK.c.status == "accepted")
    if weighed:
        weigh_ins = weigh_ins.where(W.c.weight_g.is_not(None))
        checkins = checkins.where(correct, CK.c.weight_g.is_not(None))
    if among.event_id is not None:
        weigh_ins = weigh_ins.where(W.c.event_id == among.event_id)
        drops, checkins = drops.where(false()), checkins.where(false())
    elif among.household_id is not None:
        hid = among.household_id
        # Within the household's community (an index range), its own weigh-ins and the cheques it claimed.
        community = select(H.c.community_id).where(H.c.id == hid).scalar_subquery()
        weigh_ins = weigh_ins.where(W.c.community_id == community,
                                    or_(W.c.household_id == hid, and_(W.c.voucher_id.is_not(None), CLAIMED_BY == hid)))
        drops, checkins = drops.where(D.c.household_id == hid), checkins.where(CK.c.household_id == hid)
    else:
        weigh_ins = weigh_ins.where(W.c.community_id.in_(ids))
        drops, checkins = drops.where(D.c.community_id.in_(ids)), checkins.where(CK.c.community_id.in_(ids))
    acts = (("weigh_in", weigh_ins, W.c.id, EV.c.starts_at), ("compost_drop", drops, D.c.id, D.c.dropped_at),
            ("checkin", checkins, CK.c.id, CK.c.scanned_at))
    if among.event_id is not None:
        acts = acts[:1]
    parts = [query.where(kept(act, id_col, at_col), *_bounds(at_col, lo, hi)) for act, query, id_col, at_col in acts]
    if corrections:
        parts += [undone(query, act, id_col, at_col) for act, query, id_col, at_col in acts]
    if not weighed and among.event_id is None:
        days = (
            select(
                literal("challenge_day"), CD.c.id, CH.c.community_id, EN.c.household_id, false(), CD.c.at,
                null(), null(), null(), cast(null(), Integer), cast(null(), Integer), cast(null(), Integer), false(),
            )
            .select_from(CD.join(EN, EN.c.id == CD.c.enrolment_id).join(CH, CH.c.id == EN.c.challenge_id))
            .where(*_bounds(CD.c.at, lo, hi))
        )
        days = days.where(EN.c.household_id == among.household_id) if among.household_id is not None else days.where(CH.c.community_id.in_(ids))
        parts.append(days)
    return union_all(*parts).subquery("waste_records")


# --- the measures ---------------------------------------------------------------------------------

def _by_group(rows) -> dict[str, int]:
    out = dict.fromkeys((g.value for g in GROUPS), 0)
    for group, grams in rows:
        out[group] = out.get(group, 0) + int(grams or 0)
    return out


def grams_by_group(session: Session, community_ids, lo: datetime | None, hi: datetime | None,
                   key: Callable | None = None) -> dict:
    """Grams diverted by waste group in the communities between [lo, hi) (lo None: since the start):
    {group: grams} with every group present; with `key` (an SQL expression of the record's time, e.g.
    its local month), {key value: {group: grams}}."""
    r = records(Among(communities=tuple(community_ids)), lo, hi, weighed=True, bucket=key)
    if key is None:
        return _by_group(session.execute(select(r.c.waste_group, func.sum(r.c.grams)).group_by(r.c.waste_group)).all())
    k = key(r.c.at)
    out: dict = {}
    for value, group, grams in session.execute(select(k, r.c.waste_group, func.sum(r.c.grams)).group_by(k, r.c.waste_group)).all():
        out.setdefault(value, _by_group([]))[group] += int(grams or 0)
    return out


def participating_households(session: Session, community_ids, lo: datetime | None, hi: datetime | None) -> int:
    """Households that took part in at least one act between [lo, hi) (lo None: since the start)."""
    r = records(Among(communities=tuple(community_ids)), lo, hi, weighed=False)
    return int(session.execute(select(func.count(func.distinct(r.c.household_id)))).scalar() or 0)


def household_grams(session: Session, household_id: int, lo: datetime | None, hi: datetime | None) -> tuple[dict[str, int], dict[str, int]]:
    """A household's grams diverted between [lo, hi): by category code, and by group."""
    r = records(Among(household_id=household_id), lo, hi, weighed=True)
    by_category: dict[str, int] = {}
    by_group = _by_group([])
    for category, group, grams in session.execute(
        select(r.c.category, r.c.waste_group, func.sum(r.c.grams)).group_by(r.c.category, r.c.waste_group)
    ).all():
        by_category[category] = by_category.get(category, 0) + int(grams or 0)
        by_group[group] += int(grams or 0)
    return by_category, by_group


def event_totals(session: Session, event_id: int) -> list[dict]:
    """A recycling day's totals by category (its weigh-ins, not reversed; walk-ins included)."""
    r = records(Among(event_id=event_id), None, None, weighed=False)
    rows = session.execute(
        select(
            r.c.category, r.c.waste_group, func.coalesce(func.sum(r.c.grams), 0), func.coalesce(func.sum(r.c["count"]), 0),
            func.coalesce(func.sum(r.c.points), 0), func.count(), func.count(func.distinct(r.c.household_id)),
            func.count().filter(r.c.walk_in),
        ).group_by(r.c.category, r.c.waste_group).order_by(r.c.category)
    ).all()
    return [
        {"category": c, "waste_group": g, "weight_g": int(w), "count": int(n), "points": int(p), "weigh_ins": k,
         "households": h, "walk_ins": wk}
        for c, g, w, n, p, k, h, wk in rows
    ]


def household_grams_select(community_ids, lo: datetime, hi: datetime):
    """For the point-totals export: one row per household with grams diverted (household_id, g_<group>…)."""
    r = records(Among(communities=tuple(community_ids)), lo, hi, weighed=True)
    return (
        select(r.c.household_id, *(func.sum(r.c.grams).filter(r.c.waste_group == g.value).label(f"g_{g.value}") for g in GROUPS))
        .where(r.c.household_id.is_not(None))
        .group_by(r.c.household_id)
    )


def walk_in_grams_select(community_ids, lo: datetime, hi: datetime):
    """For the point-totals export: per community, the grams of walk-ins whose cheque no household has
    claimed (community_id, g_<group>…): counted in the totals, under no household."""
    r = records(Among(communities=tuple(community_ids)), lo, hi, weighed=True)
    return (
        select(r.c.community_id, *(func.sum(r.c.grams).filter(r.c.waste_group == g.value).label(f"g_{g.value}") for g in GROUPS))
        .where(r.c.household_id.is_(None))
        .group_by(r.c.community_id)
    )


# --- drill-down: the records behind a figure -------------------------------------------------------

class WasteRecord(SQLModel):
    """One record counted in a kg measure."""

    kind: str = Field(description="weigh_in 回收日称重、compost_drop 堆肥投放、checkin 桶边督导")
    kind_name: str
    record_id: int
    at: datetime = Field(description="计入时间：称重为回收日开始时间，投放与督导为其发生时间，冲正行为冲正时间")
    local_date: str
    community: str
    compound: str | None
    building: str | None
    unit: str | None
    door_plate: str | None = Field(description="门牌；未领取积分支票的走访居民为空")
    walk_in: bool = Field(description="走访居民（积分支票）")
    category: str
    category_name: str
    waste_group: WasteGroup
    waste_group_name: str
    grams: int = Field(description="克；冲正行为负数")
    points: int
    reversal: bool = Field(default=False, description="冲正：本期对此前月份记录的更正，计于更正之时，重量与积分为负")


class ParticipatingHousehold(SQLModel):
    """A household counted among the participating households, with its acts in the period."""

    household_id: int
    community: str
    compound: str
    building: str
    unit: str
    door_plate: str
    acts: int
    weigh_ins: int
    compost_drops: int
    checkins: int
    challenge_days: int


def _waste_detail(community_ids, lo, hi, group: WasteGroup | None):
    r = records(Among(communities=tuple(community_ids)), lo, hi, weighed=True)
    stmt = (
        select(r.c.kind, r.c.record_id, r.c.at, C.c.name.label("community"), CP.c.name.label("compound"), B.c.name.label("building"),
               H.c.unit, H.c.door_plate, r.c.walk_in, r.c.category, r.c.category_name, r.c.waste_group, r.c.grams, r.c.points,
               r.c.reversal)
        .select_from(
            r.join(C, C.c.id == r.c.community_id)
            .outerjoin(H, H.c.id == r.c.household_id).outerjoin(B, B.c.id == H.c.building_id).outerjoin(CP, CP.c.id == B.c.compound_id)
        )
    )
    if group is not None:
        stmt = stmt.where(r.c.waste_group == group.value)
    return stmt, (r.c.at, r.c.kind, r.c.record_id)


def _households_detail(community_ids, lo, hi):
    r = records(Among(communities=tuple(community_ids)), lo, hi, weighed=False)
    acts = (
        select(r.c.household_id, func.count().label("acts"),
               *(func.count().filter(r.c.kind == k).label(k) for k in ("weigh_in", "compost_drop", "checkin", "challenge_day")))
        .where(r.c.household_id.is_not(None)).group_by(r.c.household_id).subquery("acts")
    )
    stmt = (
        select(acts.c.household_id, C.c.name.label("community"), CP.c.name.label("compound"), B.c.name.label("building"),
               H.c.unit, H.c.door_plate, acts.c.acts, acts.c.weigh_in, acts.c.compost_drop, acts.c.checkin, acts.c.challenge_day)
        .select_from(acts.join(H, H.c.id == acts.c.household_id).join(C, C.c.id == H.c.community_id)
                     .join(B, B.c.id == H.c.building_id).join(CP, CP.c.id == B.c.compound_id))
    )
    return stmt, (acts.c.household_id,)


def _waste_row(m, tz: ZoneInfo, names: dict[WasteGroup, str]) -> WasteRecord:
    group = WasteGroup(m["waste_group"])
    return WasteRecord(
        kind=m["kind"], kind_name=("冲正·" if m["reversal"] else "") + KIND_ZH[m["kind"]], record_id=m["record_id"], at=m["at"],
        local_date=m["at"].astimezone(tz).date().isoformat(), community=m["community"], compound=m["compound"],
        building=m["building"], unit=m["unit"], door_plate=m["door_plate"], walk_in=bool(m["walk_in"]),
        category=m["category"], category_name=m["category_name"], waste_group=group, waste_group_name=names.get(group, STANDARD_NAMES[group]),
        grams=int(m["grams"]), points=int(m["points"] or 0), reversal=bool(m["reversal"]),
    )


def _household_row(m) -> ParticipatingHousehold:
    return ParticipatingHousehold(
        household_id=m["household_id"], community=m["community"], compound=m["compound"], building=m["building"], unit=m["unit"],
        door_plate=m["door_plate"], acts=m["acts"], weigh_ins=m["weigh_in"], compost_drops=m["compost_drop"], checkins=m["checkin"],
        challenge_days=m["challenge_day"],
    )


def _query(measure: WasteMeasure, community_ids, lo, hi):
    if measure == WasteMeasure.participating_households:
        return _households_detail(community_ids, lo, hi)
    return _waste_detail(community_ids, lo, hi, measure_group(measure))


def _cursor_values(measure: WasteMeasure, cursor: str | None) -> tuple | None:
    data = decode_cursor(cursor)
    if data is None:
        return None
    try:
        if measure == WasteMeasure.participating_households:
            return (int(data["id"]),)
        return (datetime.fromisoformat(data["at"]), str(data["k"]), int(data["id"]))
    except (KeyError, TypeError, ValueError):
        raise BadRequest("invalid_cursor", "分页游标无效", "Invalid cursor", "cursor") from None


def detail_page(session: Session, measure: WasteMeasure, community_ids, lo, hi, tz: ZoneInfo,
                cursor: str | None, limit: int) -> tuple[list, str | None]:
    """A page of the records a measure counts, in the order they happened (households: by id)."""
    names = group_names_for(session, community_ids)
    stmt, keys = _query(measure, community_ids, lo, hi)
    after = _cursor_values(measure, cursor)
    if after is not None:
        stmt = stmt.where(tuple_(*keys) > tuple_(*after))
    limit = max(1, min(limit, MAX_LIMIT))
    rows = [r._mapping for r in session.execute(stmt.order_by(*keys).limit(limit + 1))]
    more = len(rows) > limit
    rows = rows[:limit]
    if measure == WasteMeasure.participating_households:
        items = [_household_row(m) for m in rows]
        next_cursor = encode_cursor({"id": rows[-1]["household_id"]}) if more else None
    else:
        items = [_waste_row(m, tz, names) for m in rows]
        last = rows[-1] if rows else None
        next_cursor = encode_cursor({"at": last["at"].isoformat(), "k": last["kind"], "id": last["record_id"]}) if more else None
    return items, next_cursor


_TITLES = {WasteMeasure.waste_reduced_kg: "垃圾减量合计", WasteMeasure.participating_households: "参与家庭"}
_RECORD_COLUMNS = (
    col("local_date", "日期", "date"), col("kind_name", "记录类型"), col("record_id", "记录编号", "int"), col("community", "社区"),
    col("compound", "小区"), col("building", "楼栋"), col("unit", "单元"), col("door_plate", "门牌"), col("walk_in", "走访居民", "bool"),
    col("category_name", "品类"), col("waste_group_name", "类别"), col("grams", "重量", "grams", True), col("points", "积分", "int", True),
)
_HOUSEHOLD_TABLE = (
    col("community", "社区"), col("compound", "小区"), col("building", "楼栋"), col("unit", "单元"), col("door_plate", "门牌"),
    col("acts", "参与次数", "int", True), col("weigh_ins", "回收日称重", "int", True), col("compost_drops", "堆肥投放", "int", True),
    col("checkins", "桶边督导", "int", True), col("challenge_days", "打卡挑战", "int", True),
)


def drilldown(session: Session, measure: WasteMeasure, community_ids, lo: datetime | None, hi: datetime, tz: ZoneInfo,
              cursor: str | None, limit: int) -> Drilldown:
    """A page of the records behind a waste figure, with the figure they add up to (over every page)."""
    items, next_cursor = detail_page(session, measure, community_ids, lo, hi, tz, cursor, limit)
    if measure == WasteMeasure.participating_households:
        value: int | float = participating_households(session, community_ids, lo, hi)
        columns = _HOUSEHOLD_TABLE
    else:
        grams = grams_by_group(session, community_ids, lo, hi)
        group = measure_group(measure)
        value = round((sum(grams.values()) if group is None else grams[group.value]) / 1000, 3)
        columns = _RECORD_COLUMNS
    group = measure_group(measure)
    title = _TITLES.get(measure) or f"{group_names_for(session, community_ids)[group]}减量"
    return Drilldown(measure=measure.value, title=title, figures={measure.value: value}, columns=list(columns),
                     rows=[item.model_dump() for item in items], next_cursor=next_cursor)


def detail_rows(session: Session, measure: WasteMeasure, community_ids, lo, hi, tz: ZoneInfo,
                names: dict[WasteGroup, str]) -> Iterator:
    """Every record a measure counts, in order (for the report's 明细 sheets)."""
    stmt, keys = _query(measure, community_ids, lo, hi)
    for r in session.execute(stmt.order_by(*keys)):
        yield _household_row(r._mapping) if measure == WasteMeasure.participating_households else _waste_row(r._mapping, tz, names)


# --- the 明细 sheets of the monthly report ----------------------------------------------------------

def group_names_for(session: Session, community_ids) -> dict[WasteGroup, str]:
    """How a report over these communities names each group (the city's own name where they share one)."""
    from app.places.service import community_cities
    from app.recycling.groups import group_label

    cities = set(community_cities(session, community_ids).values())
    return {g: group_label(g, cities) for g in GROUPS}


@dataclass(frozen=True)
class DetailSheet:
    """A 明细 sheet: its name, its columns (header, kind: text | date | kg | int), its rows, its total row."""

    name: str
    columns: tuple[tuple[str, str], ...]
    rows: Iterator[tuple]
    total: tuple | None


_WASTE_COLUMNS = (("日期", "date"), ("记录类型", "text"), ("记录编号", "int"), ("社区", "text"), ("小区", "text"), ("楼栋", "text"),
                  ("单元", "text"), ("门牌", "text"), ("走访居民", "text"), ("品类", "text"), ("类别", "text"), ("重量(kg)", "kg"),
                  ("积分", "int"))
_HOUSEHOLD_COLUMNS = (("社区", "text"), ("小区", "text"), ("楼栋", "text"), ("单元", "text"), ("门牌", "text"), ("参与次数", "int"),
                      ("回收日称重", "int"), ("堆肥投放", "int"), ("桶边督导", "int"), ("打卡挑战", "int"))


def detail_sheets(session: Session, community_ids, lo: datetime, hi: datetime, tz: ZoneInfo) -> Iterator[DetailSheet]:
    """One sheet per measure, listing exactly the records its figure for [lo, hi) counts, with a total row
    equal to the figure. Households by door plate only."""
    names = group_names_for(session, community_ids)
    for measure in WASTE_MEASURES:
        if measure == WasteMeasure.participating_households:
            rows = list(detail_rows(session, measure, community_ids, lo, hi, tz, names))
            yield DetailSheet("明细-参与家庭", _HOUSEHOLD_COLUMNS, iter(
                (h.community, h.compound, h.building, h.unit, h.door_plate, h.acts, h.weigh_ins, h.compost_drops, h.checkins,
                 h.challenge_days) for h in rows), ("合计", f"{len(rows)} 户", "", "", "", sum(h.acts for h in rows)))
            continue
        group = measure_group(measure)
        records_ = list(detail_rows(session, measure, community_ids, lo, hi, tz, names))
        title = "垃圾减量合计" if group is None else names[group]
        total_g = sum(r.grams for r in records_)
        yield DetailSheet(f"明细-{title}"[:31], _WASTE_COLUMNS, iter(
            (datetime.fromisoformat(r.local_date), r.kind_name, r.record_id, r.community, r.compound, r.building, r.unit,
             r.door_plate or ("（积分支票未领取）" if r.walk_in else ""), "是" if r.walk_in else "", r.category_name,
             r.waste_group_name, r.grams / 1000, r.points) for r in records_),
            ("合计", f"{len(records_)} 条", None, "", "", "", "", "", "", "", "", total_g / 1000, sum(r.points for r in records_)))
