"""What an act earns: the rule version in force at the act's time, the daily cap, and reversals.

Every domain that credits points (check-ins, compost, recycling, volunteers, challenges) asks here
how many points an act earns, then posts them through the ledger with a key derived from the act.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session
from sqlmodel import select as select_rows

from app.audit import service as audit
from app.core.db import utcnow
from app.identity.auth import BACKDATERS, Principal, authorize
from app.kit import cache
from app.kit.errors import BadRequest, Conflict
from app.kit.pagination import page_by_keys
from app.kit.sql import compact_sql, json_document
from app.rules.models import (
    DEFAULTS,
    ActReversal,
    HouseholdDayPoints,
    PointsRule,
    PointsRuleCreate,
    PointsRulePublic,
)

RULE = PointsRule.__table__
DAY = HouseholdDayPoints.__table__
CACHE_SECONDS = 5.0  # a new rule version reaches every worker within this many seconds


@dataclass(frozen=True)
class Rules:
    checkin_correct: int
    compost_per_kg: int
    compost_per_drop: int
    volunteer_per_hour: int
    challenge_complete: int
    daily_cap: int | None


DEFAULT_RULES = Rules(**DEFAULTS)
_FIELDS = tuple(DEFAULTS)


def _read_versions(session: Session, community_id: int) -> tuple[list[datetime], list[Rules]]:
    rows = session.execute(
        select(RULE.c.effective_from, *[RULE.c[f] for f in _FIELDS])
        .where(RULE.c.community_id == community_id)
        .order_by(RULE.c.effective_from)
    ).all()
    return [aware(r[0]) for r in rows], [Rules(*r[1:]) for r in rows]


# The community's rule versions (start times, rules), by community id; dropped when one is published.
RULES: cache.Cache[int, tuple[list[datetime], list[Rules]]] = cache.Cache(
    "points rules", _read_versions, seconds=CACHE_SECONDS
)


def aware(value: datetime) -> datetime:
    """A time as UTC-aware (naive ones are taken as UTC)."""
    from datetime import UTC

    return value if value.tzinfo else value.replace(tzinfo=UTC)


def rules_at(session: Session, community_id: int, at: datetime) -> Rules:
    """The rules in force at `at` (the defaults before the first configured version)."""
    return resolver(session, community_id)(at)


def resolver(session: Session, community_id: int, refresh: bool = False) -> Callable[[datetime], Rules]:
    """A function from act time to the rules in force then: one cache lookup for a whole batch
    (refresh: read the rules again even when the cached ones are fresh)."""
    return _resolver(*RULES.get(session, community_id, refresh))


def cached_resolver(engine_url: str, community_id: int) -> Callable[[datetime], Rules] | None:
    """The resolver if the community's rules are in this process's cache (no database at hand), else None."""
    versions = RULES.peek(engine_url, community_id)
    return None if versions is None else _resolver(*versions)


def _resolver(starts: list[datetime], rules: list[Rules]) -> Callable[[datetime], Rules]:
    if not starts:
        return lambda _at: DEFAULT_RULES

    def at(when: datetime) -> Rules:
        i = bisect_right(starts, when)
        return rules[i - 1] if i else DEFAULT_RULES

    return at


# --- configuration -----------------------------------------------------------------------------

def create_rules(session: Session, principal: Principal, community_id: int, data: PointsRuleCreate) -> PointsRule:
    now = utcnow()
    if data.effective_from is None:
        starts, versions = RULES.get(session, community_id, refresh=True)
        if versions and starts[-1] <= now and versions[-1] == Rules(**data.model_dump(exclude={"effective_from", "backdate_reason"})):
            # The same rules again (a retried request): nothing new to apply.
            return session.scalars(
                select(PointsRule).where(PointsRule.community_id == community_id).order_by(PointsRule.effective_from.desc()).limit(1)
            ).one()
    start = data.effective_from or now
    if start.tzinfo is None:
        raise BadRequest("naive_datetime", "时间须带时区", "The time needs a time zone offset", "effective_from")
    backdated = start < now - timedelta(minutes=1)
    if backdated:
        # The rules in force in a past period, for back-dated records (补录): the committee's
        # authority and a reason. Acts already credited keep their points (the ledger is not edited).
        if not data.backdate_reason:
            raise BadRequest(
                "retroactive_rule", "积分规则不能追溯生效；补录历史规则须由居委会填写补录原因",
                "A rule cannot start in the past unless the committee back-dates it with a reason", "effective_from"
            )
        authorize(session, principal, community_id, BACKDATERS)
    elif data.backdate_reason:
        raise BadRequest("not_backdated", "生效时间不在过去，无需补录原因", "Only a version starting in the past is back-dated", "backdate_reason")
    row = PointsRule(
        community_id=community_id,
        effective_from=start,
        created_by=principal.user_id,
        **data.model_dump(exclude={"effective_from"}),
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict("duplicate", "该时间已有一版规则", "A rule version already starts at this time") from None
    audit.record(
        session,
        actor_user_id=principal.user_id,
        action="points_rule.create",
        object_type="points_rule",
        object_id=row.id,
        community_id=community_id,
        request_id=principal.request_id,
        detail=data.model_dump(mode="json"),
    )
    session.commit()
    RULES.invalidate(community_id)
    return row


def list_rules(session: Session, community_id: int, cursor: str | None, limit: int):
    """Oldest version first."""
    stmt = select_rows(PointsRule).where(PointsRule.community_id == community_id)
    return page_by_keys(session, stmt, [PointsRule.effective_from, PointsRule.id], cursor, limit)


def current_rules(session: Session, community_id: int) -> PointsRulePublic:
    now = utcnow()
    starts, _ = RULES.get(session, community_id)
    i = bisect_right(starts, now)
    rules = rules_at(session, community_id, now)
    return PointsRulePublic(
        community_id=community_id, effective_from=starts[i - 1] if i else None, **rules.__dict__
    )


# --- the daily cap -----------------------------------------------------------------------------



def cap_rows(
    session: Session, table: Table, rows: list[dict[str, Any]], cap_of: Callable[[dict[str, Any]], int | None],
    day_of: Callable[[dict[str, Any]], date],
) -> None:
    """Cut each row's "points" to what its household's daily cap leaves (`apply_daily_cap`, rows grouped
    by the cap in force, in order within a group), and store the cut points on the row's record in
    `table` (by its "id"). For batches of acts that earn points: check-ins, compost drops, weigh-ins."""
    groups: dict[int | None, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[cap_of(r)].append(r)
    cut = []
    for cap, items in groups.items():
        asked = [(r["household_id"], day_of(r), r["points"]) for r in items]
        for r, granted in zip(items, apply_daily_cap(session, cap, asked), strict=True):
            if granted != r["points"]:
                r["points"] = granted
                cut.append({"row_id": r["id"], "granted": granted})
    if cut:
        session.execute(update(table).where(table.c.id == bindparam("row_id")).values(points=bindparam("granted")), cut)


def apply_daily_cap(session: Session, cap: int | None, items: list[tuple[int, date, int]]) -> list[int]:
    """Points actually granted for each (household, local day, points asked), in order: `daily_caps_sql`
    over the items, one statement."""
    if cap is None or not items:
        return [p for _, _, p in items]
    acts = [{"id": n, "household_id": h, "day": d, "points": p} for n, (h, d, p) in enumerate(items)]
    granted = dict(session.connection().exec_driver_sql(_CAP_SQL, {"acts": json_document(acts), "cap": cap}).all())
    return [granted[n] for n in range(len(items))]


def daily_caps_sql(source: str) -> str:
    """The daily cap, the one definition: CTEs that grant a set of acts what their households' daily
    caps leave, under the cap %(cap)s (NULL: none).

    `source` has the columns id (orders a household's acts within its day), household_id, day (its
    local day) and points (asked). The counter of a (household, day) holds what was granted that day,
    net of reversals (`release_daily_cap`). The CTE `day_counter` adds to each counter what of the day's
    asked points fits under the cap, in one upsert in household order (concurrent acts wait on the
    counter's row lock and then see each other's grants); the CTE `capped` gives each act (id, asked,
    points granted): a day's acts take what is left under the cap in id order.
    """
    return f"""day_asked AS (
    SELECT s.household_id, s.day, sum(s.points) AS asked
    FROM {source} AS s WHERE %(cap)s::integer IS NOT NULL AND s.points > 0
    GROUP BY s.household_id, s.day
),
day_counter AS (
    INSERT INTO {DAY.name} AS d (household_id, day, granted, last_grant)
    SELECT a.household_id, a.day, LEAST(a.asked, GREATEST(%(cap)s::integer, 0)), LEAST(a.asked, GREATEST(%(cap)s::integer, 0))
    FROM day_asked AS a
    ORDER BY a.household_id, a.day
    ON CONFLICT (household_id, day) DO UPDATE
    SET granted = d.granted + LEAST(excluded.granted, GREATEST(0, %(cap)s::integer - d.granted)),
        last_grant = LEAST(excluded.granted, GREATEST(0, %(cap)s::integer - d.granted))
    RETURNING household_id, day, granted - last_grant AS used
),
capped AS (
    SELECT s.id, s.points AS asked,
           CASE WHEN %(cap)s::integer IS NULL OR s.points <= 0 THEN s.points
                ELSE GREATEST(0, LEAST(s.points, %(cap)s::integer - u.used
                                       - (sum(s.points) OVER (PARTITION BY s.household_id, s.day ORDER BY s.id) - s.points)))
           END AS points
    FROM {source} AS s LEFT JOIN day_counter AS u ON u.household_id = s.household_id AND u.day = s.day
)"""


_CAP_SQL = compact_sql(f"""WITH acts AS (SELECT * FROM json_to_recordset(%(acts)s::json) AS s(id integer, household_id bigint, day date, points integer)),
{daily_caps_sql("acts")}
SELECT id, points FROM capped""")


def release_daily_cap(session: Session, household_id: int, day: date, points: int) -> None:
    """A reversed act no longer counts toward its day's cap: give its granted points back."""
    if points > 0:
        session.execute(
            DAY.update()
            .where(DAY.c.household_id == household_id, DAY.c.day == day)
            .values(granted=func.greatest(DAY.c.granted - points, 0))
        )


# --- reversals ---------------------------------------------------------------------------------

def reverse_act(
    session: Session,
    principal: Principal,
    *,
    community_id: int,
    act: str,
    act_id: int,
    credit_key: str | None,
    reason: str,
    cap_day: tuple[int, date, int] | None = None,
) -> ActReversal:
    """Record the correction of an act and reverse its points (if it earned any). Once per act.

    `cap_day` is the (household, local day, points granted) the act counted toward the daily cap:
    those points no longer count, so the household can still earn up to the cap that day.
    Does not commit.
    """
    from app.ledger import service as ledger

    row = ActReversal(
        community_id=community_id, act=act, act_id=act_id, reason=reason, actor_user_id=principal.user_id
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict("already_reversed", "该记录已被冲正", "This record has already been corrected") from None
    if cap_day is not None:
        # Before the ledger: acts lock the day's counter, then the household's account; same order here.
        release_daily_cap(session, *cap_day)
    if credit_key is not None:
        entry_id = ledger.entry_by_key(session, credit_key)
        if entry_id is not None:
            row.entry_id = ledger.reverse(
                session,
                entry_id,
                reason=reason,
                actor_user_id=principal.user_id,
                idempotency_key=f"reverse:{credit_key}",
            )
            session.add(row)
    audit.record(
        session,
        actor_user_id=principal.user_id,
        action=f"{act}.reverse",
        object_type=act,
        object_id=act_id,
        community_id=community_id,
        request_id=principal.request_id,
        detail={"reason": reason, "entry_id": row.entry_id},
    )
    return row


def not_reversed(act: str, act_id, *, when=None):
    """SQL: the act `act` whose id is the column `act_id` has not been corrected (ActReversal): the one
    test every figure that sums acts applies (report measures, a compost bin's fed weight, a harvest's shares).

    `when(reversal_at)`, an SQL condition on the correction's time, limits the test to corrections made
    then: a period's figures leave out what was corrected within the period, and keep what was corrected
    later (that correction counts in its own period, so a closed month never changes)."""
    t = ActReversal.__table__
    return ~exists().where(t.c.act == act, t.c.act_id == act_id, *(() if when is None else (when(t.c.at),)))


def reversed_ids(session: Session, act: str, ids: list[int]) -> set[int]:
    if not ids:
        return set()
    return set(
        session.execute(
            select(ActReversal.__table__.c.act_id).where(
                ActReversal.__table__.c.act == act, ActReversal.__table__.c.act_id.in_(ids)
            )
        ).scalars()
    )
