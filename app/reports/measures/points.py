"""Points measures (积分指标), defined once: issued, redeemed, held, expired, balance.

The monthly report, the point-totals export (and its roll-up), the dashboard and the passbook totals
all read these definitions, so they cannot disagree. Every measure sums ledger postings at the time
of their own entry: a lapse, a cancellation or a reversal counts in the period it happens (under the
source of the entry it corrects), so a closed period's figures never change afterwards.

- issued (发放积分): what the community gave out — points credited for acts, points cheques when
  they are issued (not when claimed) and manual adjustments (net) — less reversals.
- redeemed (兑换消耗): points handed over (held → redeemed), in the period of the hand-over.
- held (冻结): points reserved by open redemptions at the end of the period; not spent, not spendable.
- expired (过期清零): households' points taken by the expiry run.
- balance (可用积分): households' spendable points at the end of the period (held points apart).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, and_, cast, func, or_, select, tuple_
from sqlalchemy.orm import aliased
from sqlmodel import Session

from app.kit.errors import BadRequest
from app.kit.pagination import MAX_LIMIT, decode_cursor, encode_cursor
from app.ledger.models import JournalEntry, LedgerAccount, Posting, SystemAccount
from app.places.models import Building, Household
from app.reports.measures.detail import Drilldown, col

E = JournalEntry.__table__
P = Posting.__table__
A = LedgerAccount.__table__
ORIG = aliased(JournalEntry.__table__, name="orig")
_CORRECTION = aliased(JournalEntry.__table__, name="correction")
REVERSED = select(_CORRECTION.c.reverses_entry_id).where(_CORRECTION.c.reverses_entry_id.is_not(None))

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

# The source an entry counts under: its own, or for a correction that of the entry it reverses.
SOURCE = func.coalesce(ORIG.c.source, E.c.source)
# The time an entry counts at: always its own (a correction lands when it happens).
AT = E.c.occurred_at
# Sources with a column of their own; unknown (future) sources count as adjustments so that
# closing = opening + earned − redeemed − expired.
_NAMED = tuple(s for s, _ in EARN_SOURCES if s != "adjustment") + ("redemption", "expiry")

_ON_HOUSEHOLD = A.c.household_id.is_not(None)
_ON_HELD = and_(A.c.household_id.is_(None), A.c.kind == SystemAccount.held.value)
_ON_REDEEMED = and_(A.c.household_id.is_(None), A.c.kind == SystemAccount.redeemed.value)
# Whose points a posting moves: the household's own account, or its share of `held` and `redeemed`
# (those entries name their household).
OWNER = func.coalesce(A.c.household_id, E.c.household_id)
OWNED = or_(_ON_HOUSEHOLD, _ON_HELD, _ON_REDEEMED)
# Postings with their account, entry and (for a correction) the entry it reverses. Only entries that
# were reversed can be an original: that small set is what the join hashes, not the whole journal.
POSTINGS = (
    A.join(P, P.c.account_id == A.c.id)
    .join(E, E.c.id == P.c.entry_id)
    .outerjoin(ORIG, and_(ORIG.c.id == E.c.reverses_entry_id, ORIG.c.id.in_(REVERSED)))
)

# Household flows, summed by `household_flows` in this order (the roll-up has a column for each,
# `since_lo` as `net`). since_lo and held_net cover every posting read; the others the period's.
UNBOUNDED_FLOWS = ("since_lo", "held_net")
POINT_FLOWS = (*UNBOUNDED_FLOWS, *(s for s, _ in EARN_SOURCES), "redemption", "expiry", "held")


def household_flows(in_period=None) -> list:
    """A household's point flows over a group of OWNED postings, labelled as POINT_FLOWS:
    since_lo — its spendable balance moved; held_net — its held points moved; then of those
    `in_period` (all when None): points earned by source, redemption (−hand-overs), expiry (−expired),
    held (held points moved). Opening and closing count held points as the household's own:
    closing = opening + earned + redemption + expiry."""

    def within(picked):
        return picked if in_period is None else and_(picked, in_period)

    def earned(src: str):
        picked = SOURCE.not_in(_NAMED) if src == "adjustment" else SOURCE == src
        return func.sum(P.c.amount).filter(within(and_(_ON_HOUSEHOLD, picked)))

    return [
        func.sum(P.c.amount).filter(_ON_HOUSEHOLD).label("since_lo"),
        func.sum(P.c.amount).filter(_ON_HELD).label("held_net"),
        *(earned(s).label(s) for s, _ in EARN_SOURCES),
        (-func.sum(P.c.amount).filter(within(_ON_REDEEMED))).label("redemption"),
        func.sum(P.c.amount).filter(within(and_(_ON_HOUSEHOLD, SOURCE == "expiry"))).label("expiry"),
        func.sum(P.c.amount).filter(within(_ON_HELD)).label("held"),
    ]


# Each measure's written definition (key, term, text), for the monthly report's 说明.
DEFINITIONS: tuple[tuple[str, str, str], ...] = (
    ("points_issued", "发放积分",
     "社区发出的积分：行为所得积分、积分支票（签发时计，不论是否领取）和居委会人工调整（净额），减去冲正。"
     "冲正计入发生的月份，已结束月份的数字不再改变。"),
    ("points_redeemed", "兑换消耗", "兑付（交付礼品）时计入的积分；预约冻结的积分在交付前不算兑换消耗。"),
    ("points_held", "预约冻结积分", "期末尚未兑付的预约所冻结的积分：不可使用，也不算兑换消耗。"),
    ("points_expired", "过期清零", "过期任务清零的住户积分。"),
    ("backdated_records", "其中补录记录",
     "回收日结束 3 天后由居委会补录的称重记录和活动日期 3 天后才录入的活动（按回收日、活动日期计入月份），均注明补录原因。"),
)


def _int(v) -> int:
    return int(v or 0)


@dataclass(frozen=True)
class PointsMeasures:
    issued: int
    redeemed: int
    held: int
    expired: int
    balance: int


# Where points come from: acts and cheques (`issued`) and the committee's manual adjustments (net).
_ISSUING = (SystemAccount.issued.value, SystemAccount.adjustments.value)


# The postings each flow measure sums, and the sign that makes them the figure: issued is what left the
# issuing accounts, redeemed what reached `redeemed`, expired what the expiry run took from households.
FLOWS: dict[str, tuple] = {
    "issued": (and_(A.c.household_id.is_(None), A.c.kind.in_(_ISSUING)), -1),
    "redeemed": (_ON_REDEEMED, 1),
    "expired": (and_(A.c.household_id.is_(None), A.c.kind == SystemAccount.expired.value, E.c.household_id.is_not(None)), 1),
}


def _community_flows(community_ids, lo: datetime | None, hi: datetime):
    period = AT < hi if lo is None else and_(AT >= lo, AT < hi)
    return [(sign * func.sum(P.c.amount).filter(and_(picked, period))).label(name) for name, (picked, sign) in FLOWS.items()]


def flow_postings(community_ids, measure: str, lo: datetime | None, hi: datetime):
    """The postings a flow measure (issued, redeemed, expired) sums over [lo, hi), one row each: the entry
    (id, time, source it counts under, memo, household), and its points as the figure counts them. They add
    up to the figure (the drill-down of points_issued, points_redeemed, points_expired)."""
    picked, sign = FLOWS[measure]
    ids = tuple(community_ids) or (-1,)
    return (
        select(E.c.id.label("entry_id"), AT.label("at"), SOURCE.label("source"), E.c.memo, E.c.household_id,
               (sign * P.c.amount).label("points"), E.c.reverses_entry_id)
        .select_from(POSTINGS)
        .where(A.c.community_id.in_(ids), E.c.community_id.in_(ids), picked, AT < hi, *([] if lo is None else [AT >= lo]))
    )


def held_by_household(community_ids, hi: datetime):
    """Each household's points held by open reservations at hi (the drill-down of points_held): they add
    up to the figure."""
    ids = tuple(community_ids) or (-1,)
    return (
        select(E.c.household_id, func.sum(P.c.amount).label("points"), func.count(func.distinct(E.c.id)).label("entries"))
        .select_from(A.join(P, P.c.account_id == A.c.id).join(E, E.c.id == P.c.entry_id))
        .where(A.c.community_id.in_(ids), _ON_HELD, AT < hi)
        .group_by(E.c.household_id)
        .having(func.sum(P.c.amount) != 0)
    )


def points_measures(session: Session, community_ids, lo: datetime | None, hi: datetime) -> PointsMeasures:
    """The communities' points measures for [lo, hi) (lo None: since the start); held and balance at hi."""
    ids = tuple(community_ids) or (-1,)
    # Balances at hi: today's (on the account rows) less what moved since hi; reads only the recent journal.
    start = hi if lo is None else min(lo, hi)
    issued, redeemed, expired, after_balance, after_held = session.execute(
        select(
            *_community_flows(ids, lo, hi),
            func.sum(P.c.amount).filter(and_(_ON_HOUSEHOLD, AT >= hi)),
            func.sum(P.c.amount).filter(and_(_ON_HELD, AT >= hi)),
        )
        .select_from(A.join(P, P.c.account_id == A.c.id).join(E, E.c.id == P.c.entry_id))
        .where(A.c.community_id.in_(ids), E.c.community_id.in_(ids), *([] if lo is None else [AT >= start]))
    ).one()
    balance, held = session.execute(
        select(func.sum(A.c.balance), func.sum(A.c.held)).where(A.c.community_id.in_(ids), _ON_HOUSEHOLD)
    ).one()
    return PointsMeasures(
        issued=_int(issued), redeemed=_int(redeemed), expired=_int(expired),
        held=_int(held) - _int(after_held), balance=_int(balance) - _int(after_balance),
    )


def points_by(session: Session, community_ids, lo: datetime, hi: datetime, key) -> dict[str, tuple[int, int, int]]:
    """issued, redeemed and expired in [lo, hi) grouped by key(time) (e.g. the local month)."""
    ids = tuple(community_ids) or (-1,)
    k = key(AT)
    rows = session.execute(
        select(k, *_community_flows(ids, lo, hi))
        .select_from(A.join(P, P.c.account_id == A.c.id).join(E, E.c.id == P.c.entry_id))
        .where(A.c.community_id.in_(ids), E.c.community_id.in_(ids), AT >= lo, AT < hi)
        .group_by(k)
    ).all()
    return {m: (_int(i), _int(r), _int(x)) for m, i, r, x in rows}


@dataclass(frozen=True)
class HouseholdPoints:
    earned_by_source: dict[str, int]
    earned: int
    redeemed: int
    expired: int
    held: int  # at the end of the period
    balance: int  # spendable, at the end of the period


def household_points(session: Session, household_id: int, lo: datetime | None, hi: datetime | None) -> HouseholdPoints:
    """One household's points measures for [lo, hi) (None: open-ended), as the point-totals export counts them."""
    in_period = and_(*([AT >= lo] if lo is not None else []), *([AT < hi] if hi is not None else [])) if (lo or hi) else None
    # Its own account's postings, and its share of `held` and `redeemed` (entries that name it).
    cond = [or_(A.c.household_id == household_id, and_(E.c.household_id == household_id, _ON_HELD | _ON_REDEEMED))]
    if hi is not None:
        after = AT >= hi
        extra = [func.sum(P.c.amount).filter(and_(_ON_HOUSEHOLD, after)), func.sum(P.c.amount).filter(and_(_ON_HELD, after))]
    else:
        extra = [cast(0, BigInteger), cast(0, BigInteger)]
    row = session.execute(select(*household_flows(in_period), *extra).select_from(POSTINGS).where(*cond)).one()
    flows = dict(zip(POINT_FLOWS, (_int(v) for v in row[: len(POINT_FLOWS)]), strict=True))
    after_balance, after_held = _int(row[-2]), _int(row[-1])
    account = session.execute(select(A.c.balance, A.c.held).where(A.c.household_id == household_id)).first()
    balance, held = (int(account[0]), int(account[1])) if account else (0, 0)
    by_source = {s: flows[s] for s, _ in EARN_SOURCES if flows[s]}
    return HouseholdPoints(
        earned_by_source=by_source, earned=sum(by_source.values()), redeemed=-flows["redemption"],
        expired=-flows["expiry"], held=held - after_held, balance=balance - after_balance,
    )


# --- drill-down: the entries behind a points figure ------------------------------------------------

POINTS_RECORDS = ("points_issued", "points_redeemed", "points_held", "points_expired")
_TITLES = {"points_issued": "发放积分", "points_redeemed": "兑换消耗", "points_held": "预约冻结积分", "points_expired": "过期清零"}
H, B = Household.__table__, Building.__table__
_SOURCE_ZH = dict(EARN_SOURCES) | {"redemption": "积分兑换", "expiry": "过期清零"}


def drilldown(session: Session, measure: str, community_ids, lo: datetime | None, hi: datetime, tz,
              cursor: str | None, limit: int | None):
    """A page of the ledger entries behind a points figure of the monthly report (by door plate), with the
    figure they add up to: issued, redeemed and expired list their postings in time order (a correction
    at its own time, under the source it corrects); held lists each household's held points at the end.
    limit None: every row (the report's 明细 sheet)."""
    limit = None if limit is None else max(1, min(limit, MAX_LIMIT))
    upto = None if limit is None else limit + 1
    after = decode_cursor(cursor)
    figure = getattr(points_measures(session, community_ids, lo, hi), measure.removeprefix("points_"))
    place = (B.c.name.label("building"), H.c.unit, H.c.door_plate)
    try:
        if measure == "points_held":
            q = held_by_household(community_ids, hi).subquery()
            stmt = (select(q.c.household_id, *place, q.c.points, q.c.entries)
                    .select_from(q.outerjoin(H, H.c.id == q.c.household_id).outerjoin(B, B.c.id == H.c.building_id)))
            if after is not None:
                stmt = stmt.where(q.c.household_id > int(after["h"]))
            found = session.execute(stmt.order_by(q.c.household_id).limit(upto)).all()
            rows = [{"household_id": r.household_id, "building": r.building, "unit": r.unit, "door_plate": r.door_plate,
                     "points": int(r.points), "entries": int(r.entries)} for r in found[:limit]]
            more = {"h": found[limit - 1].household_id} if upto and len(found) > limit else None
            columns = [col("building", "楼栋"), col("unit", "单元"), col("door_plate", "门牌"), col("points", "冻结积分", "int", True),
                       col("entries", "预约记录", "int", True)]
        else:
            q = flow_postings(community_ids, measure.removeprefix("points_"), lo, hi).subquery()
            stmt = (select(q, *place)
                    .select_from(q.outerjoin(H, H.c.id == q.c.household_id).outerjoin(B, B.c.id == H.c.building_id)))
            if after is not None:
                stmt = stmt.where(tuple_(q.c.at, q.c.entry_id) > tuple_(datetime.fromisoformat(after["at"]), int(after["id"])))
            found = session.execute(stmt.order_by(q.c.at, q.c.entry_id).limit(upto)).all()
            rows = [{"entry_id": r.entry_id, "local_date": r.at.astimezone(tz).date(), "source": r.source,
                     "source_name": ("冲正·" if r.reverses_entry_id else "") + _SOURCE_ZH.get(r.source, r.source), "memo": r.memo,
                     "building": r.building, "unit": r.unit, "door_plate": r.door_plate, "points": int(r.points)}
                    for r in found[:limit]]
            last = found[limit - 1] if upto and len(found) > limit else None
            more = {"at": last.at.isoformat(), "id": last.entry_id} if last is not None else None
            columns = [col("local_date", "日期", "date"), col("entry_id", "记账编号", "int"), col("source_name", "来源"),
                       col("memo", "说明"), col("building", "楼栋"), col("unit", "单元"), col("door_plate", "门牌"),
                       col("points", "积分", "int", True)]
    except (KeyError, TypeError, ValueError):
        raise BadRequest("invalid_cursor", "分页游标无效", "Invalid cursor", "cursor") from None
    return Drilldown(measure=measure, title=_TITLES[measure], figures={measure: figure}, columns=columns, rows=rows,
                     next_cursor=encode_cursor(more) if more else None)
