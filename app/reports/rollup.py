"""The point totals roll-up: every household posting summed per household and local month, up to a
watermark entry id.

Exact by construction, whatever arrives late: the roll-up of a time zone holds the entries with
id <= its watermark, each counted in the month of its own occurred_at (a correction too: it lands
when it happens, measures.points), per household (its own account and its share of held and
redeemed points) — and the
export reads in one snapshot the roll-up rows, the watermark and, live, the entries with id > the
watermark whatever time they carry: a scan back-dated by 72 h or an adjustment dated last year. Every
household posting is counted once, from one side or the other. Entries are never updated or deleted
(ledger.service), and an entry's postings commit with it.

The watermark only moves to an id below which no entry can still commit: `refresh` reads max(id)
under a SHARE lock on journal_entry, which waits for the transactions writing entries at that moment
to end (an id is drawn inside an INSERT, which holds ROW EXCLUSIVE on the table until commit). The lock
is held for that one read; ingest waits at most as long as the longest write in flight (lock_timeout
bounds the wait, and the refresh just tries again later).

The job `reports-rollup` runs it nightly (app.jobs), and `jianfei reports rollup` after a bulk load;
how fresh it is only changes how much of the journal an export reads live.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import Date, cast, func, literal, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.core.db import utcnow
from app.reports.measures.points import AT, OWNED, OWNER, POSTINGS, A, E
from app.reports.models import HouseholdMonthPoints, PointRollupState
from app.reports.scope import Period
from app.reports.totals import FLOWS, Rollup, flow_columns

R = HouseholdMonthPoints.__table__
S = PointRollupState.__table__
KEYS = ("timezone", "month", "community_id", "household_id")
COLUMNS = ("net", *FLOWS[1:])  # the table's figures, in FLOWS order (since_lo is net)
CHUNK = 1_000_000  # entry ids per transaction when catching up


@dataclass
class Refreshed:
    timezone: str
    watermark_before: int
    watermark: int
    transactions: int  # chunks written (0: it was up to date)


def increment(tz: str, after_id: int, upto_id: int):
    """INSERT … SELECT of the sums of the household postings of entries after_id < id <= upto_id, by
    community, household and local month of their effective time, added to the rows already there."""
    month = cast(func.date_trunc("month", func.timezone(tz, AT)), Date)
    sums = select(literal(tz).label("timezone"), month.label("month"), A.c.community_id, OWNER,
                  *(func.coalesce(col, 0) for col in flow_columns()))
    sums = (
        sums.select_from(POSTINGS)
        # The entry's own community, as the live statement requires of a scope's entries.
        .where(OWNED, E.c.id > after_id, E.c.id <= upto_id, E.c.community_id == A.c.community_id)
        .group_by(A.c.community_id, OWNER, month)
    )
    stmt = postgresql.insert(R).from_select([*KEYS, *COLUMNS], sums)
    return stmt.on_conflict_do_update(index_elements=list(KEYS), set_={c: R.c[c] + stmt.excluded[c] for c in COLUMNS})


def safe_watermark(engine: Engine, lock_timeout: str = "5s") -> int:
    """The highest entry id below which nothing can still commit (see the module's note)."""
    with engine.begin() as conn:
        conn.execute(text(f"SET LOCAL lock_timeout = '{lock_timeout}'"))
        conn.execute(text("LOCK TABLE journal_entry IN SHARE MODE"))
        return conn.execute(select(func.coalesce(func.max(E.c.id), 0))).scalar_one()


def refresh(engine: Engine, timezones: list[str], *, upto: int | None = None, chunk: int = CHUNK) -> list[Refreshed]:
    """Bring each time zone's roll-up up to the safe watermark (or to `upto`, for tests: an id below
    which every entry has committed), a chunk of entry ids per transaction."""
    target = safe_watermark(engine) if upto is None else upto
    done = []
    for tz in timezones:
        before = None
        chunks = 0
        while True:
            with Session(engine) as session:
                session.execute(postgresql.insert(S).values(timezone=tz, watermark=0, updated_at=utcnow()).on_conflict_do_nothing())
                # FOR UPDATE: two refreshes of one time zone take turns (the second sees the first's watermark).
                mark = session.execute(select(S.c.watermark).where(S.c.timezone == tz).with_for_update()).scalar_one()
                before = mark if before is None else before
                if mark >= target:
                    session.commit()
                    break
                step = min(target, mark + chunk)
                session.execute(increment(tz, mark, step))
                chunks += 1
                session.execute(S.update().where(S.c.timezone == tz).values(watermark=step, updated_at=utcnow()))
                session.commit()
        done.append(Refreshed(tz, before, max(before, target), chunks))
    return done


def refresh_everywhere(engine: Engine) -> list[Refreshed]:
    """`refresh` for the settings' time zone and every community's: those the exports ask for."""
    from app.core.config import get_settings
    from app.places.service import community_timezones

    with Session(engine) as session:
        timezones = sorted({get_settings().timezone, *(tz for _, tz in community_timezones(session))})
    return refresh(engine, timezones)


def whole_months(period: Period) -> tuple[date, date] | None:
    """[first month, month after the last) if the period is made of whole local months, else None."""
    after = period.end + timedelta(days=1)
    if period.start.day != 1 or after.day != 1:
        return None
    return period.start, after


def current(session: Session, tz: str, period: Period) -> Rollup | None:
    """The roll-up an export of `period` reads, in the caller's snapshot (the export's transaction is
    REPEATABLE READ: the watermark and the rows it reads are of one moment), or None: a period that is
    not whole months, or no roll-up for the time zone yet."""
    months = whole_months(period)
    if months is None:
        return None
    mark = session.execute(select(S.c.watermark).where(S.c.timezone == tz)).scalar_one_or_none()
    if not mark:
        return None
    return Rollup(tz, mark, *months)
