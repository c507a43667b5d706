"""Rates from check-in records: participation, sorting accuracy, month-on-month retention, relapse after
a campaign, and the red and black list (红黑榜) of compounds or buildings.

Counts come from `checkin` rows: accepted scans (not duplicates, not rejected) that were not corrected
afterwards (a reversed check-in was the wrong household), by the scan's instant against the local
calendar days of the community. Registered households are the active ones; a household counts in the
building it is registered in. Counting is done per building in SQL; compounds and the community are sums
of their buildings (a household is in one building, so distinct counts add up).

Privacy: an aggregate is shown only when it is over at least MIN_HOUSEHOLDS households — participation
over registered households, accuracy over participating households. Groups below it are left out and
counted as hidden; nothing here ever carries a household's identity.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from sqlalchemy import distinct, func, select
from sqlmodel import Field, Session, SQLModel

from app.audit import service as audit
from app.checkins.models import CheckIn, CheckResult, ScanStatus
from app.core.db import utcnow
from app.identity.auth import Principal
from app.kit.errors import BadRequest
from app.places.models import Building, Compound, Household, HouseholdStatus
from app.reports.models import (
    DEFAULT_ACCURACY_PCT,
    DEFAULT_PARTICIPATION_PCT,
    RankingSettings,
    RankingSettingsPublic,
    RankingSettingsUpdate,
)
from app.reports.scope import Period, Scope, ScopeKind, month_period, period_of, resolve
from app.rules.service import not_reversed

MIN_HOUSEHOLDS = 5
MAX_CAMPAIGN_DAYS = 366

CK = CheckIn.__table__
H = Household.__table__
B = Building.__table__
CP = Compound.__table__


class Level(StrEnum):
    community = "community"
    compound = "compound"
    building = "building"


# --- answers -----------------------------------------------------------------------------------

class RateRow(SQLModel):
    level: Level
    id: int
    name: str = Field(description="社区、小区或“小区 楼栋”名称")
    households: int = Field(description="登记在册（有效）户数")
    participating: int = Field(description="期间内至少有一次有效督导记录的户数")
    participation_rate: float | None = Field(description="参与率（0–1）；少于 5 户时不显示")
    checks: int | None = Field(description="有效检查次数；参与户少于 5 户时不显示（否则可推算正确率）")
    correct: int | None
    accuracy: float | None = Field(description="分类正确率（0–1）；参与户少于 5 户时不显示")


class Rates(SQLModel):
    community_id: int
    community: str
    start: date
    end: date
    by: Level
    min_households: int = MIN_HOUSEHOLDS
    total: RateRow
    groups: list[RateRow]
    hidden: int = Field(description="因登记户数少于 5 户而未列出的组数")


class RetentionRow(SQLModel):
    level: Level
    id: int
    name: str
    active_last_month: int
    active_this_month: int
    retained: int | None = Field(description="上月和本月都有有效督导记录的户数；上月活跃户少于 5 户时不显示")
    retention_rate: float | None = Field(description="留存率 = 留存户 / 上月活跃户；少于 5 户时不显示")


class Retention(SQLModel):
    community_id: int
    community: str
    month: str
    last_month: str
    by: Level
    min_households: int = MIN_HOUSEHOLDS
    total: RetentionRow
    groups: list[RetentionRow]
    hidden: int


class RelapseRow(SQLModel):
    level: Level
    id: int
    name: str
    during: RateRow
    after: RateRow
    participation_drop: float | None = Field(description="参与率下降（活动期间 − 活动之后，0–1）")
    accuracy_drop: float | None = Field(description="正确率下降（活动期间 − 活动之后，0–1）")


class Relapse(SQLModel):
    community_id: int
    community: str
    campaign: str
    start: date
    end: date
    after_start: date
    after_end: date
    after_complete: bool = Field(description="活动之后的同等时长是否已全部过去")
    by: Level
    min_households: int = MIN_HOUSEHOLDS
    total: RelapseRow
    groups: list[RelapseRow]
    hidden: int


class ListedGroup(SQLModel):
    level: Level
    id: int
    name: str
    households: int
    participating: int
    participation_rate: float
    accuracy: float
    rank: int


class RedBlackList(SQLModel):
    community_id: int
    community: str
    start: date
    end: date
    by: Level
    thresholds: RankingSettingsPublic
    min_households: int = MIN_HOUSEHOLDS
    red: list[ListedGroup] = Field(description="红榜：正确率和参与率都达到门槛，按正确率、参与率从高到低")
    black: list[ListedGroup] = Field(description="黑榜：正确率或参与率低于门槛，按正确率、参与率从低到高")
    hidden: int = Field(description="参与户少于 5 户、因此不上榜的组数")


# --- counting ----------------------------------------------------------------------------------

@dataclass
class Counts:
    households: int = 0
    participating: int = 0
    checks: int = 0
    correct: int = 0

    def add(self, other: Counts) -> None:
        self.households += other.households
        self.participating += other.participating
        self.checks += other.checks
        self.correct += other.correct


@dataclass(frozen=True)
class Place:
    building_id: int
    building: str
    compound_id: int
    compound: str


def _places(session: Session, community_id: int) -> list[Place]:
    rows = session.execute(
        select(B.c.id, B.c.name, CP.c.id, CP.c.name).select_from(B.join(CP, CP.c.id == B.c.compound_id))
        .where(B.c.community_id == community_id).order_by(CP.c.id, func.length(B.c.name), B.c.name, B.c.id)
    ).all()
    return [Place(*r) for r in rows]


def _registered(session: Session, community_id: int) -> dict[int, int]:
    return {b: int(n) for b, n in session.execute(
        select(H.c.building_id, func.count()).where(H.c.community_id == community_id, H.c.status == HouseholdStatus.active.value)
        .group_by(H.c.building_id)
    ).all()}


def accepted(community_id: int, lo: datetime, hi: datetime) -> list:
    """Conditions on `checkin` for the checks that count: accepted, in [lo, hi), not corrected since."""
    return [
        CK.c.community_id == community_id,
        CK.c.status == ScanStatus.accepted.value,
        CK.c.scanned_at >= lo,
        CK.c.scanned_at < hi,
        CK.c.household_id.is_not(None),
        not_reversed("checkin", CK.c.id),
    ]


def _checked(session: Session, community_id: int, lo: datetime, hi: datetime) -> dict[int, tuple[int, int, int]]:
    """Per building: (participating households, checks, correct)."""
    rows = session.execute(
        select(
            H.c.building_id,
            func.count(distinct(CK.c.household_id)),
            func.count(),
            func.count().filter(CK.c.result == CheckResult.correct.value),
        )
        .select_from(CK.join(H, H.c.id == CK.c.household_id))
        .where(*accepted(community_id, lo, hi), H.c.status == HouseholdStatus.active.value)
        .group_by(H.c.building_id)
    ).all()
    return {b: (int(p), int(n), int(k)) for b, p, n, k in rows}


def _counts(session: Session, community_id: int, places: list[Place], lo: datetime, hi: datetime) -> dict[int, Counts]:
    registered, checked = _registered(session, community_id), _checked(session, community_id, lo, hi)
    return {p.building_id: Counts(registered.get(p.building_id, 0), *checked.get(p.building_id, (0, 0, 0))) for p in places}


def _groups(scope: Scope, places: list[Place], level: Level) -> list[tuple[int, str, list[int]]]:
    """(id, name, building ids) for each group of the level, in a stable order."""
    if level == Level.community:
        return [(scope.id, scope.name, [p.building_id for p in places])]
    if level == Level.building:
        return [(p.building_id, f"{p.compound} {p.building}", [p.building_id]) for p in places]
    out: dict[int, tuple[int, str, list[int]]] = {}
    for p in places:
        out.setdefault(p.compound_id, (p.compound_id, p.compound, []))[2].append(p.building_id)
    return list(out.values())


def _sum(by_building: dict[int, Counts], ids: list[int]) -> Counts:
    total = Counts()
    for b in ids:
        total.add(by_building[b])
    return total


def _ratio(num: int, den: int, over: int) -> float | None:
    """num/den, shown only when the aggregate is over at least MIN_HOUSEHOLDS households."""
    return round(num / den, 4) if den and over >= MIN_HOUSEHOLDS else None


def _row(level: Level, gid: int, name: str, c: Counts) -> RateRow:
    # Below MIN_HOUSEHOLDS participating, the check counts go too: they would give the accuracy away.
    shown = c.participating >= MIN_HOUSEHOLDS
    return RateRow(
        level=level, id=gid, name=name, households=c.households, participating=c.participating,
        participation_rate=_ratio(c.participating, c.households, c.households),
        checks=c.checks if shown else None, correct=c.correct if shown else None,
        accuracy=_ratio(c.correct, c.checks, c.participating),
    )


def _scope(session: Session, community_id: int) -> Scope:
    return resolve(session, ScopeKind.community, community_id)


def rates(session: Session, community_id: int, by: Level, *, month: str | None = None,
          start: date | None = None, end: date | None = None) -> Rates:
    """Participation and accuracy for the community and each compound or building over a period."""
    scope = _scope(session, community_id)
    period = period_of(month, start, end, scope.tz)
    places = _places(session, community_id)
    counts = _counts(session, community_id, places, *period.bounds(scope.tz))
    total = _row(Level.community, scope.id, scope.name, _sum(counts, list(counts)))
    shown, hidden = [], 0
    if by != Level.community:
        for gid, name, ids in _groups(scope, places, by):
            c = _sum(counts, ids)
            if c.households < MIN_HOUSEHOLDS:
                hidden += 1
                continue
            shown.append(_row(by, gid, name, c))
    return Rates(community_id=scope.id, community=scope.name, start=period.start, end=period.end, by=by,
                 total=total, groups=shown, hidden=hidden)


# --- retention ---------------------------------------------------------------------------------

def _previous_month(month: str) -> str:
    first = month_period(month).start
    return (first - timedelta(days=1)).strftime("%Y-%m")


def _active(community_id: int, lo: datetime, hi: datetime):
    return select(CK.c.household_id).where(*accepted(community_id, lo, hi)).distinct().subquery()


def retention(session: Session, community_id: int, by: Level, month: str | None) -> Retention:
    """Households active this month that were also active last month, over those active last month."""
    scope = _scope(session, community_id)
    month = month or utcnow().astimezone(scope.tz).strftime("%Y-%m")
    last = _previous_month(month)
    now_lo, now_hi = month_period(month).bounds(scope.tz)
    last_lo, last_hi = month_period(last).bounds(scope.tz)
    cur, prev = _active(community_id, now_lo, now_hi), _active(community_id, last_lo, last_hi)
    active_now = dict(session.execute(
        select(H.c.building_id, func.count()).select_from(cur.join(H, H.c.id == cur.c.household_id))
        .where(H.c.status == HouseholdStatus.active.value).group_by(H.c.building_id)
    ).all())
    kept = {b: (int(n), int(k)) for b, n, k in session.execute(
        select(H.c.building_id, func.count(), func.count(cur.c.household_id))
        .select_from(prev.join(H, H.c.id == prev.c.household_id).outerjoin(cur, cur.c.household_id == prev.c.household_id))
        .where(H.c.status == HouseholdStatus.active.value).group_by(H.c.building_id)
    ).all()}
    places = _places(session, community_id)

    def row(level: Level, gid: int, name: str, ids: list[int]) -> RetentionRow:
        last_n = sum(kept.get(b, (0, 0))[0] for b in ids)
        retained = sum(kept.get(b, (0, 0))[1] for b in ids)
        return RetentionRow(level=level, id=gid, name=name, active_last_month=last_n,
                            active_this_month=sum(int(active_now.get(b, 0)) for b in ids),
                            retained=retained if last_n >= MIN_HOUSEHOLDS else None,
                            retention_rate=_ratio(retained, last_n, last_n))

    total = row(Level.community, scope.id, scope.name, [p.building_id for p in places])
    shown, hidden = [], 0
    if by != Level.community:
        registered = _registered(session, community_id)
        for gid, name, ids in _groups(scope, places, by):
            if sum(registered.get(b, 0) for b in ids) < MIN_HOUSEHOLDS:
                hidden += 1
                continue
            shown.append(row(by, gid, name, ids))
    return Retention(community_id=scope.id, community=scope.name, month=month, last_month=last, by=by,
                     total=total, groups=shown, hidden=hidden)


# --- relapse after a campaign ------------------------------------------------------------------

def _drop(during: float | None, after: float | None) -> float | None:
    return round(during - after, 4) if during is not None and after is not None else None


def relapse(session: Session, community_id: int, by: Level, *, start: date | None,
            end: date | None, challenge_id: int | None) -> Relapse:
    """Participation and accuracy during a campaign against the same number of days right after it."""
    scope = _scope(session, community_id)
    if challenge_id is not None:
        if start or end:
            raise BadRequest("invalid_period", "请只给出挑战或起止日期之一", "Give either a challenge or start/end, not both", "challenge_id")
        from app.activities import service as activities

        challenge = activities.get_challenge(session, challenge_id)
        if challenge.community_id != community_id:
            raise BadRequest("invalid_challenge", "该挑战不属于此社区", "The challenge is not in this community", "challenge_id")
        campaign, start, end = challenge.title, challenge.starts_on, challenge.ends_on
    else:
        if start is None or end is None:
            raise BadRequest("invalid_period", "请给出活动的起止日期或挑战", "Give the campaign's start and end dates, or a challenge", "start")
        campaign = f"{start.isoformat()} 至 {end.isoformat()}"
    if end < start:
        raise BadRequest("invalid_period", "结束日期早于开始日期", "End date is before start date", "end")
    days = (end - start).days + 1
    if days > MAX_CAMPAIGN_DAYS:
        raise BadRequest("invalid_period", "活动期不能超过一年", "A campaign cannot be longer than a year", "end")
    after = Period(end + timedelta(days=1), end + timedelta(days=days))
    places = _places(session, community_id)
    during_c = _counts(session, community_id, places, *Period(start, end).bounds(scope.tz))
    after_c = _counts(session, community_id, places, *after.bounds(scope.tz))

    def row(level: Level, gid: int, name: str, ids: list[int]) -> RelapseRow:
        d, a = _row(level, gid, name, _sum(during_c, ids)), _row(level, gid, name, _sum(after_c, ids))
        return RelapseRow(level=level, id=gid, name=name, during=d, after=a,
                          participation_drop=_drop(d.participation_rate, a.participation_rate),
                          accuracy_drop=_drop(d.accuracy, a.accuracy))

    total = row(Level.community, scope.id, scope.name, [p.building_id for p in places])
    shown, hidden = [], 0
    if by != Level.community:
        for gid, name, ids in _groups(scope, places, by):
            if _sum(during_c, ids).households < MIN_HOUSEHOLDS:
                hidden += 1
                continue
            shown.append(row(by, gid, name, ids))
    today = utcnow().astimezone(scope.tz).date()
    return Relapse(community_id=scope.id, community=scope.name, campaign=campaign, start=start, end=end,
                   after_start=after.start, after_end=after.end, after_complete=after.end < today, by=by,
                   total=total, groups=shown, hidden=hidden)


# --- the red and black list (红黑榜) -------------------------------------------------------------

def _settings_public(community_id: int, row: RankingSettings | None) -> RankingSettingsPublic:
    if row is None:
        return RankingSettingsPublic(community_id=community_id, accuracy_pct=DEFAULT_ACCURACY_PCT,
                                     participation_pct=DEFAULT_PARTICIPATION_PCT, configured=False)
    return RankingSettingsPublic(community_id=community_id, accuracy_pct=row.accuracy_pct,
                                 participation_pct=row.participation_pct, configured=True, updated_at=row.updated_at)


def read_settings(session: Session, community_id: int) -> RankingSettingsPublic:
    scope = _scope(session, community_id)
    return _settings_public(scope.id, session.get(RankingSettings, scope.id))


def update_settings(session: Session, principal: Principal, community_id: int, data: RankingSettingsUpdate) -> RankingSettingsPublic:
    """The committee's thresholds. Sending the same values again changes nothing and writes no audit row."""
    scope = _scope(session, community_id)
    row = session.get(RankingSettings, scope.id)
    before = None if row is None else {"accuracy_pct": row.accuracy_pct, "participation_pct": row.participation_pct}
    after = {"accuracy_pct": data.accuracy_pct, "participation_pct": data.participation_pct}
    if before == after:
        return _settings_public(scope.id, row)
    if row is None:
        row = RankingSettings(community_id=scope.id, **after)
        session.add(row)
    else:
        row.accuracy_pct, row.participation_pct = data.accuracy_pct, data.participation_pct
    row.updated_at, row.updated_by = utcnow(), principal.user_id
    audit.record(session, actor_user_id=principal.user_id, action="reports.ranking_settings", object_type="ranking_settings",
                 object_id=scope.id, community_id=scope.id, request_id=principal.request_id,
                 detail={"before": before, "after": after})
    session.commit()
    session.refresh(row)
    return _settings_public(scope.id, row)


def red_black_list(session: Session, community_id: int, by: Level, *, month: str | None = None,
                   start: date | None = None, end: date | None = None) -> RedBlackList:
    """Compounds or buildings at or above both thresholds (red) and below either (black).

    A group is listed only when both its figures are over at least MIN_HOUSEHOLDS households: its
    registered households (participation) and its participating households (accuracy).
    """
    scope = _scope(session, community_id)
    if by == Level.community:
        raise BadRequest("invalid_level", "红黑榜按小区或楼栋排名", "The list ranks compounds or buildings", "by")
    period = period_of(month, start, end, scope.tz)
    settings = _settings_public(scope.id, session.get(RankingSettings, scope.id))
    places = _places(session, community_id)
    counts = _counts(session, community_id, places, *period.bounds(scope.tz))
    red, black, hidden = [], [], 0
    for gid, name, ids in _groups(scope, places, by):
        c = _sum(counts, ids)
        if c.households < MIN_HOUSEHOLDS or c.participating < MIN_HOUSEHOLDS:
            hidden += 1
            continue
        item = ListedGroup(level=by, id=gid, name=name, households=c.households, participating=c.participating,
                           participation_rate=round(c.participating / c.households, 4),
                           accuracy=round(c.correct / c.checks, 4), rank=0)
        # Exact integer comparisons: 95 of 100 checks is exactly 95 %, whatever the float rounding.
        on_red = (c.correct * 100 >= settings.accuracy_pct * c.checks
                  and c.participating * 100 >= settings.participation_pct * c.households)
        (red if on_red else black).append((c, item))
    red.sort(key=lambda x: (-x[0].correct / x[0].checks, -x[0].participating / x[0].households, x[1].name))
    black.sort(key=lambda x: (x[0].correct / x[0].checks, x[0].participating / x[0].households, x[1].name))
    for ranked in (red, black):
        for i, (_, item) in enumerate(ranked, 1):
            item.rank = i
    return RedBlackList(community_id=scope.id, community=scope.name, start=period.start, end=period.end, by=by,
                        thresholds=settings, red=[i for _, i in red], black=[i for _, i in black], hidden=hidden)
