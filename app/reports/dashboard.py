"""The committee dashboard's figures for one community: small aggregates the page draws with ECharts.

Everything is grouped in SQL by local day or month (the community's time zone), so the page gets a
few dozen numbers whatever the size of the community. Check-ins and accuracy come from the check-in
records (correct / all accepted checks), compost produced from the compost harvests, kg from the
reports' waste measure (app.reports.measures.waste), points issued and redeemed from the points
measures (app.reports.measures.points).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlmodel import Field, Session, SQLModel

from app.compost import service as compost
from app.core.db import utcnow
from app.places.service import community_city, get_community
from app.recycling.groups import GROUPS, group_names
from app.reports.measures import waste
from app.reports.measures.points import points_by
from app.reports.rates import CK, accepted
from app.reports.totals import B, H


class DayCheckins(SQLModel):
    day: str
    checks: int
    correct: int
    accuracy: float | None = Field(description="正确率（0–1）；当天无检查时为空")


class MonthKg(SQLModel):
    month: str
    kg: dict[str, float] = Field(description="按类别的减量（kg）：kitchen, recyclable, hazardous, other")


class BuildingParticipation(SQLModel):
    building: str
    households: int
    participating: int
    rate: float


class MonthPoints(SQLModel):
    month: str
    issued: int
    redeemed: int


class MonthCompost(SQLModel):
    month: str
    kg: float = Field(description="开箱产出的堆肥（kg）")


class Dashboard(SQLModel):
    community_id: int
    community: str
    generated_at: datetime
    days: int
    months: int
    checkins_by_day: list[DayCheckins]
    checkins_source: str = Field(description="检查记录的来源：checkins（桶边督导记录）")
    kg_by_month: list[MonthKg]
    waste_group_names: dict[str, str] = Field(default_factory=dict, description="各类别在社区所在城市的名称（如上海：湿垃圾、干垃圾）")
    participation_by_building: list[BuildingParticipation]
    points_by_month: list[MonthPoints]
    compost_by_month: list[MonthCompost] = Field(description="堆肥产出（开箱记录），按月")
    unavailable: list[str] = Field(default_factory=list, description="尚未接入系统的数据来源")


def _local(session: Session, col, tz: ZoneInfo, fmt: str):
    """SQL: the local calendar day ('day') or month ('month') of a timestamp, as text."""
    return func.to_char(func.timezone(tz.key, col), "YYYY-MM-DD" if fmt == "day" else "YYYY-MM")


def _months_back(today: date, months: int) -> list[str]:
    out, y, m = [], today.year, today.month
    for _ in range(months):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
    return out[::-1]


def build(session: Session, community_id: int, *, days: int = 30, months: int = 12) -> Dashboard:
    community = get_community(session, community_id)
    tz = ZoneInfo(community.timezone)
    now = utcnow()
    today = now.astimezone(tz).date()
    day_keys = [(today - timedelta(days=i)).isoformat() for i in range(days - 1, -1, -1)]
    month_keys = _months_back(today, months)
    day_lo = datetime.combine(today - timedelta(days=days - 1), time.min, tz)
    day_hi = datetime.combine(today + timedelta(days=1), time.min, tz)
    month_lo = datetime.combine(date.fromisoformat(month_keys[0] + "-01"), time.min, tz)

    # Waste diverted by group by month: the reports' waste measure, from the records.
    by_month = waste.grams_by_group(session, [community.id], month_lo, day_hi, key=lambda col: _local(session, col, tz, "month"))
    kg = {m: {g.value: round(by_month.get(m, {}).get(g.value, 0) / 1000, 3) for g in GROUPS} for m in month_keys}

    # Points issued versus redeemed (handed over) by month: the measures of measures.points.
    points = {m: [0, 0] for m in month_keys}
    for m, (issued, spent, _) in points_by(session, [community.id], month_lo, day_hi,
                                           key=lambda col: _local(session, col, tz, "month")).items():
        if m in points:
            points[m] = [issued, spent]

    # Check-ins by day from the check-in records: every accepted check, correct or not (accuracy = correct / all).
    day = _local(session, CK.c.scanned_at, tz, "day")
    by_day = {d: [0, 0] for d in day_keys}
    for d, n, k in session.execute(
        select(day, func.count(), func.count().filter(CK.c.result == "correct"))
        .where(*accepted(community.id, day_lo, day_hi)).group_by(day)
    ).all():
        if d in by_day:
            by_day[d] = [int(n), int(k)]

    # Participation by building over the last `days` days: households with an accepted check-in.
    active = select(CK.c.household_id).where(*accepted(community.id, day_lo, day_hi)).distinct().subquery()
    participation = [
        BuildingParticipation(building=name, households=int(n), participating=int(p or 0),
                              rate=round(int(p or 0) / int(n), 4) if n else 0.0)
        for name, n, p in session.execute(
            select(B.c.name, func.count(H.c.id), func.count(active.c.household_id))
            .select_from(H.join(B, B.c.id == H.c.building_id).outerjoin(active, active.c.household_id == H.c.id))
            .where(H.c.community_id == community.id, H.c.status == "active")
            .group_by(B.c.id, B.c.name)
            .order_by(func.length(B.c.name), B.c.name, B.c.id)
        ).all()
    ]

    # Compost produced: harvests (开箱) by local month.
    harvested = compost.produced_g(session, [community.id], month_lo, day_hi,
                                   key=lambda col: _local(session, col, tz, "month"))
    return Dashboard(
        community_id=community.id,
        community=community.name,
        generated_at=now,
        days=days,
        months=months,
        checkins_by_day=[
            DayCheckins(day=d, checks=c, correct=k, accuracy=round(k / c, 4) if c else None) for d, (c, k) in by_day.items()
        ],
        checkins_source="checkins",
        kg_by_month=[MonthKg(month=m, kg=v) for m, v in kg.items()],
        waste_group_names={g.value: name for g, name in group_names(community_city(session, community.id)).items()},
        participation_by_building=participation,
        points_by_month=[MonthPoints(month=m, issued=i, redeemed=r) for m, (i, r) in points.items()],
        compost_by_month=[MonthCompost(month=m, kg=round(harvested.get(m, 0) / 1000, 3)) for m in month_keys],
        unavailable=[],
    )
