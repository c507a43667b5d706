"""Point expiry. Spending consumes the oldest points first (FIFO), so what is left of the points earned
before a cutoff T is max(0, earned before T − everything debited since the start) = max(0, balance −
earned since T); expiry takes exactly that. Reversed entries and their reversals cancel.

Expiry entries use the key `expiry:<household>:<cutoff>`, so a run repeated, or run by two instances
at once, posts each expiry exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlmodel import Session

from app.core.db import utcnow
from app.ledger import service as ledger
from app.ledger.models import ExpiryMode, LedgerPolicy, PolicyPublic, Source, SystemAccount
from app.ledger.service import ACCOUNT, ENTRY, POSTING, Line


def get_policy(session: Session, community_id: int) -> LedgerPolicy:
    return session.get(LedgerPolicy, community_id) or LedgerPolicy(community_id=community_id)


def set_policy(session: Session, community_id: int, data: PolicyPublic) -> LedgerPolicy:
    policy = session.get(LedgerPolicy, community_id) or LedgerPolicy(community_id=community_id)
    policy.expiry_mode = data.expiry_mode.value
    policy.expiry_month = data.expiry_month
    policy.expiry_day = data.expiry_day
    policy.expiry_months = data.expiry_months
    policy.updated_at = utcnow()
    session.add(policy)
    return policy


def _local_midnight(d: date, tz: ZoneInfo) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=tz).astimezone(UTC)


def _expiry_date(policy: LedgerPolicy, year: int) -> date:
    day = policy.expiry_day
    while True:
        try:
            return date(year, policy.expiry_month, day)
        except ValueError:  # 31 in a 30-day month, 29 Feb
            day -= 1


def _add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    day = d.day
    while True:
        try:
            return date(year, month, day)
        except ValueError:
            day -= 1


def cutoff_at(policy: LedgerPolicy, tz: ZoneInfo, now: datetime) -> tuple[datetime | None, datetime | None]:
    """(T, when): points earned before T have expired by `now`; `when` is the expiry moment that applied."""
    today = now.astimezone(tz).date()
    if policy.expiry_mode == ExpiryMode.year_end:
        this_year = _expiry_date(policy, today.year)
        year = today.year if today > this_year else today.year - 1
        when = _expiry_date(policy, year)
        # Earned in year-1 or before expire at the end of `when` (local day).
        return _local_midnight(date(year, 1, 1), tz), _local_midnight(when + timedelta(days=1), tz)
    if policy.expiry_mode == ExpiryMode.rolling:
        # Day granularity keeps reruns on one key.
        return _local_midnight(rolling_cutoff_day(policy, today), tz), _local_midnight(today, tz)
    return None, None


def rolling_cutoff_day(policy: LedgerPolicy, day: date) -> date:
    """Rolling expiry: the run of local day `day` takes what is left of the points earned before this
    local day (day − N months). The one rule behind both the run and the passbook's expiry date."""
    return _add_months(day, -policy.expiry_months)


def _credits_since(community_id: int, cutoff: datetime, household_id: int | None = None, *columns):
    """The households' (non-reversed) credits earned since the cutoff, summed per household and `columns`.

    Reversed pairs cancel in the balance, so what is left of the points earned before a cutoff is the
    balance minus these: only the recent window is read, however long the history."""
    reversed_ids = select(ENTRY.c.reverses_entry_id).where(ENTRY.c.reverses_entry_id.is_not(None))
    return (
        select(ENTRY.c.household_id, *columns, func.sum(POSTING.c.amount).label("recent"))
        .select_from(ENTRY.join(POSTING, POSTING.c.entry_id == ENTRY.c.id).join(ACCOUNT, ACCOUNT.c.id == POSTING.c.account_id))
        .where(
            ENTRY.c.community_id == community_id,
            ENTRY.c.occurred_at >= cutoff,
            ENTRY.c.reverses_entry_id.is_(None),
            ENTRY.c.id.not_in(reversed_ids),
            ACCOUNT.c.household_id == ENTRY.c.household_id,
            POSTING.c.amount > 0,
            *([ENTRY.c.household_id == household_id] if household_id is not None else []),
        )
        .group_by(ENTRY.c.household_id, *columns)
    )


def _remaining_before(session: Session, community_id: int, cutoff: datetime, household_id: int | None = None):
    """Per household: (household_id, points earned before cutoff still unspent, balance)."""
    recent = _credits_since(community_id, cutoff, household_id).subquery()
    cond = [ACCOUNT.c.community_id == community_id, ACCOUNT.c.household_id.is_not(None), ACCOUNT.c.balance > 0]
    if household_id is not None:
        cond.append(ACCOUNT.c.household_id == household_id)
    stmt = select(
        ACCOUNT.c.household_id, ACCOUNT.c.balance - func.coalesce(recent.c.recent, 0), ACCOUNT.c.balance
    ).select_from(ACCOUNT.outerjoin(recent, recent.c.household_id == ACCOUNT.c.household_id)).where(*cond)
    return session.execute(stmt).all()


def run_expiry(session: Session, community_id: int, tz: ZoneInfo, now: datetime | None = None) -> tuple[datetime | None, int, int]:
    """Post the expiry entries due at `now`. Idempotent. Commits. Returns (cutoff, households, points)."""
    now = now or utcnow()
    policy = get_policy(session, community_id)
    cutoff, when = cutoff_at(policy, tz, now)
    if cutoff is None:
        return None, 0, 0
    households = points = 0
    label = cutoff.astimezone(tz).date().isoformat()
    for household_id, remaining, balance in _remaining_before(session, community_id, cutoff):
        amount = min(int(remaining), int(balance))
        if amount <= 0:
            continue
        posted = ledger.post(
            session,
            community_id=community_id,
            idempotency_key=f"expiry:{household_id}:{label}",
            source=Source.expiry,
            memo=f"积分过期（{label}前获得）",
            lines=[Line(-amount, household_id=household_id), Line(amount, system=SystemAccount.expired)],
            household_id=household_id,
            occurred_at=min(when, now),
        )
        if not posted.replayed:
            households += 1
            points += amount
    session.commit()
    return cutoff, households, points


def run_expiry_everywhere(
    session: Session, community_id: int | None = None, progress: Callable[[int, int], None] | None = None
) -> tuple[int, int, int]:
    """`run_expiry` in every community (or one), each in its own time zone. Commits per community.
    Returns (communities, households, points)."""
    from app.places.service import community_timezones

    communities = community_timezones(session, community_id)
    households = points = 0
    for done, (cid, tz) in enumerate(communities, 1):
        _, h, p = run_expiry(session, cid, ZoneInfo(tz))
        households += h
        points += p
        if progress:
            progress(done, len(communities))
    return len(communities), households, points


def expiring_soon(session: Session, community_id: int, household_id: int, tz: ZoneInfo, days: int = 30) -> tuple[int, datetime | None]:
    """Points that the expiry runs of the next `days` days will take, and when the first of them are
    taken: the run's own rule (`cutoff_at`, `rolling_cutoff_day`), so the date shown is the date the
    run takes them."""
    policy = get_policy(session, community_id)
    now = utcnow()
    future = now + timedelta(days=days)
    cutoff_now, _ = cutoff_at(policy, tz, now)
    cutoff_future, when = cutoff_at(policy, tz, future)
    if cutoff_future is None or cutoff_future == cutoff_now and policy.expiry_mode == ExpiryMode.year_end:
        return 0, None
    rows = _remaining_before(session, community_id, cutoff_future, household_id)
    if not rows:
        return 0, None
    _, remaining, balance = rows[0]
    amount = max(0, min(int(remaining), int(balance)))
    if not amount:
        return 0, None
    if policy.expiry_mode == ExpiryMode.rolling:
        when = _first_rolling_run(session, policy, community_id, household_id, tz, now, days, int(balance))
    return amount, when


def _first_rolling_run(session: Session, policy: LedgerPolicy, community_id: int, household_id: int, tz: ZoneInfo,
                       now: datetime, days: int, balance: int) -> datetime | None:
    """The first local day of the next `days` whose rolling run takes some of the household's points
    (FIFO: what is left of the points earned before its cutoff), as the run's moment."""
    today = now.astimezone(tz).date()
    since = _local_midnight(rolling_cutoff_day(policy, today), tz)
    local_day = func.date(func.timezone(tz.key, ENTRY.c.occurred_at))
    earned = {d: int(n) for _, d, n in session.execute(_credits_since(community_id, since, household_id, local_day)).all()}
    for offset in range(days + 1):
        day = today + timedelta(days=offset)
        cutoff = rolling_cutoff_day(policy, day)
        if balance - sum(n for d, n in earned.items() if d >= cutoff) > 0:
            return _local_midnight(day, tz)
    return None
