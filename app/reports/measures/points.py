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

from sqlalchemy import BigInteger, and_, cast, func, or_, select
from sqlalchemy.orm import aliased
from sqlmodel import Session

from app.ledger.models import JournalEntry, LedgerAccount, Posting, SystemAccount

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


def _community_flows(community_ids, lo: datetime | None, hi: datetime):
    period = AT < hi if lo is None else and_(AT >= lo, AT < hi)
    return [
        (-func.sum(P.c.amount).filter(and_(A.c.household_id.is_(None), A.c.kind.in_(_ISSUING), period))).label("issued"),
        func.sum(P.c.amount).filter(and_(_ON_REDEEMED, period)).label("redeemed"),
        func.sum(P.c.amount).filter(and_(A.c.household_id.is_(None), A.c.kind == SystemAccount.expired.value,
                                         E.c.household_id.is_not(None), period)).label("expired"),
    ]


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
