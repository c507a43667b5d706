"""The passbook (减废存折): balance, statement lines with running balance, period totals.

A statement page reads the household's postings backwards by their sequence number (an index range
scan), so the first page costs the same for 10 entries or 100,000.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import and_, select
from sqlmodel import Session

from app.kit.errors import BadRequest
from app.kit.pagination import decode_cursor, encode_cursor
from app.ledger.models import StatementLine, StatementTotals
from app.ledger.service import ACCOUNT, ENTRY, POSTING
from app.places.models import Household
from app.places.service import get_community, get_household


def open_passbook(session: Session, household_id: int) -> tuple[Household, ZoneInfo]:
    """The household and its community's time zone."""
    household = get_household(session, household_id)
    return household, ZoneInfo(get_community(session, household.community_id).timezone)


def _account(session: Session, household_id: int) -> tuple[int | None, int]:
    row = session.execute(select(ACCOUNT.c.id, ACCOUNT.c.balance).where(ACCOUNT.c.household_id == household_id)).first()
    return (row[0], int(row[1])) if row else (None, 0)


def statement(
    session: Session,
    household_id: int,
    tz: ZoneInfo,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    source: str | None = None,
    cursor: str | None = None,
    limit: int = 20,
) -> tuple[int, list[StatementLine], str | None]:
    account_id, balance = _account(session, household_id)
    if account_id is None:
        return balance, [], None
    limit = max(1, min(limit, 200))
    cond = [POSTING.c.account_id == account_id, POSTING.c.seq.is_not(None)]
    after = decode_cursor(cursor)
    if after is not None:
        seq = after.get("seq")
        if not isinstance(seq, int):
            raise BadRequest("invalid_cursor", "分页游标无效", "Invalid cursor", "cursor")
        cond.append(POSTING.c.seq < seq)
    if start is not None:
        cond.append(ENTRY.c.occurred_at >= start)
    if end is not None:
        cond.append(ENTRY.c.occurred_at < end)
    if source:
        cond.append(ENTRY.c.source == source)
    rows = session.execute(
        select(
            POSTING.c.seq,
            POSTING.c.amount,
            POSTING.c.balance_after,
            ENTRY.c.id,
            ENTRY.c.occurred_at,
            ENTRY.c.source,
            ENTRY.c.memo,
            ENTRY.c.quantity_g,
            ENTRY.c.category,
            ENTRY.c.reverses_entry_id,
        )
        .select_from(POSTING.join(ENTRY, ENTRY.c.id == POSTING.c.entry_id))
        .where(and_(*cond))
        .order_by(POSTING.c.seq.desc())
        .limit(limit + 1)
    ).all()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor({"seq": rows[-1].seq})
    items = []
    for r in rows:
        items.append(
            StatementLine(
                entry_id=r.id,
                occurred_at=r.occurred_at,
                date=r.occurred_at.astimezone(tz).date().isoformat(),
                source=r.source,
                memo=r.memo,
                points_in=max(r.amount, 0),
                points_out=max(-r.amount, 0),
                balance_after=r.balance_after,
                quantity_g=r.quantity_g,
                category=r.category,
                reverses_entry_id=r.reverses_entry_id,
            )
        )
    return balance, items, next_cursor


def totals(session: Session, household_id: int, start: datetime | None, end: datetime | None) -> StatementTotals:
    """Period totals. Points are the measures of app.reports.measures.points (the point-totals export's):
    a correction counts in the period it happens, a redemption when handed over, held points apart.
    Grams diverted from the records (the reports' waste measure: every weigh-in, drop and weighed
    check-in of the household, cheques it claimed included; reversed records out)."""
    from app.reports.measures import waste
    from app.reports.measures.points import household_points

    by_category, by_group = waste.household_grams(session, household_id, start, end)
    measured = household_points(session, household_id, start, end)
    by_source = dict(measured.earned_by_source)
    if measured.redeemed:
        by_source["redemption"] = -measured.redeemed
    if measured.expired:
        by_source["expiry"] = -measured.expired
    return StatementTotals(
        household_id=household_id,
        points_in=sum(v for v in measured.earned_by_source.values() if v > 0),
        points_out=measured.redeemed + measured.expired - sum(v for v in measured.earned_by_source.values() if v < 0),
        points_by_source=by_source,
        grams_by_category=by_category,
        grams_by_group=by_group,
        redeemed=measured.redeemed,
        expired=measured.expired,
        held=measured.held,
        balance=measured.balance,
    )
