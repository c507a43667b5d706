"""The monthly report (月报) for an organisation or a street: "this month" and "cumulative" side by side.

Every figure is computed from records. Waste (kg by group, and participating households) is the waste
measures' (app.reports.measures.waste: what was weighed or dropped, never points), summed in integer
grams per group, the total the sum of the groups, so they always add up; units are fixed (kg with three
decimals, points, households, 人次, hours). Points issued, redeemed (at hand-over), held (open
reservations at the month's end) and expired are the points measures' (app.reports.measures.points: a
correction counts in the month it happens, so a closed month never changes). Partner organisations, communities active, activities, 人次 and
人, leaflets, beneficiaries and media come from the people measures (app.reports.measures.people, which
also defines them and lists the records behind them); volunteer attendances and hours from finished
shifts, compost produced from harvests; the month's activities are listed by region (street, community)
and organisation, a back-dated one (补录) marked; 其中补录记录 counts the month's back-dated weigh-ins and
activities. The XLSX (app.reports.workbook) lists the records behind each measure on a 明细 sheet.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select
from sqlmodel import Field, Session, SQLModel

from app.activities import service as activities
from app.compost import service as compost
from app.core.db import utcnow
from app.places.models import Community, Organisation, Street
from app.places.service import community_cities
from app.recycling import service as recycling
from app.recycling.groups import GROUPS, group_label
from app.reports import workbook
from app.reports.measures import people, points, waste
from app.reports.measures.detail import Drilldown
from app.reports.scope import Period, Scope, ScopeKind, month_period, resolve
from app.reports.workbook import month_label  # noqa: F401 - the report's month as 2026年10月, for callers
from app.volunteers import service as volunteers

# Every figure has its records now; kept (empty) so clients that read `unavailable` keep working.
UNAVAILABLE: dict[str, str] = {}


class Figure(SQLModel):
    key: str
    label: str = Field(description="中文名称")
    unit: str
    this_month: float | int | None = Field(description="本月")
    cumulative: float | int | None = Field(description="累计（项目开始至本月末）")
    records: str | None = Field(default=None, description="明细：GET …/reports/monthly/records/{records} 列出本月（或 cumulative=true 累计）数字背后的记录")


class ActivityLine(SQLModel):
    id: int
    title: str
    kind: str
    held_on: date
    place: str
    participants: int = Field(description="参与人次")
    named: int = Field(description="已按户登记的参与者")
    unique_participants: int | None = Field(description="活动记录填写的去重人数（未填写时为空；不加总）")
    direct_beneficiaries: int
    indirect_beneficiaries: int
    volunteers: int = Field(description="志愿者人次")
    leaflets: int = Field(description="发放宣传品（份）")
    media_items: int = Field(description="报道本活动的媒体记录（月末已登记的）")
    media_reads: int = Field(description="这些报道月末的阅读量")
    backdated: bool = Field(default=False, description="补录的活动（活动日期 3 天后才录入）")


class ActivityGroup(SQLModel):
    street: str
    community_id: int
    community: str
    organisation_id: int | None
    organisation: str = Field(description="主办机构；社区自办时为“社区自办”")
    activities: list[ActivityLine]
    totals: dict[str, int] = Field(description="本组合计：活动场次、人次、已登记参与者、受益人次、志愿者人次、宣传品、媒体")


class Definition(SQLModel):
    key: str = Field(description="指标的 key（figures 中）")
    term: str = Field(description="指标")
    text: str = Field(description="定义：怎样由记录计算")


class MonthlyReport(SQLModel):
    scope: str
    scope_id: int
    name: str
    month: str
    generated_at: datetime
    figures: list[Figure]
    waste_by_category: list[Figure] = Field(description="分类减量；合计等于各类之和")
    unavailable: dict[str, str] = Field(description="系统尚未记录、因此未填写的指标")
    activities: list[ActivityGroup] = Field(default_factory=list, description="本月活动，按地区（街道、社区）和机构分组")
    definitions: list[Definition] = Field(default_factory=list, description="说明：每个指标的定义")


def _kg(grams: int) -> float:
    return round(grams / 1000, 3)


def _record_figures(session: Session, scope: Scope, lo: datetime, hi: datetime) -> list[Figure]:
    """Volunteers and compost: this month (instants [lo, hi)) and cumulative (everything up to the month's end)."""
    ids = scope.community_ids
    vol_now, vol_all = volunteers.served(session, ids, lo, hi), volunteers.served(session, ids, None, hi)
    compost_now, compost_all = compost.produced_g(session, ids, lo, hi)[None], compost.produced_g(session, ids, None, hi)[None]

    def fig(key, label, unit, a, b):
        records = "compost_harvests" if key.startswith("compost") else "volunteer_shifts"
        return Figure(key=key, label=label, unit=unit, this_month=a, cumulative=b, records=records)

    return [
        fig("volunteer_attendances", "志愿者值守人次（签到签退记录）", "人次", vol_now[0], vol_all[0]),
        fig("volunteer_hours", "志愿服务时长", "小时", round(vol_now[1] / 60, 2), round(vol_all[1] / 60, 2)),
        fig("compost_produced_kg", "堆肥产出", "kg", _kg(compost_now), _kg(compost_all)),
    ]


def _people(values: list[people.Value]) -> list[Figure]:
    return [Figure(key=v.key, label=v.label, unit=v.unit, this_month=v.this_month, cumulative=v.cumulative, records=v.records)
            for v in values]


_ACTIVITY_TOTALS = ("participants", "named", "direct_beneficiaries", "indirect_beneficiaries", "volunteers", "leaflets",
                    "media_items", "media_reads")


def _activity_groups(session: Session, scope: Scope, period: Period) -> list[ActivityGroup]:
    """The month's activities by region (street, community) and organising organisation, with sums."""
    rows = activities.held(session, scope.community_ids, period.start, period.end)
    if not rows:
        return []
    details = people.activity_details(session, scope, period, [a.id for a in rows])
    community_ids = {a.community_id for a in rows}
    places = {cid: (name, street) for cid, name, street in session.execute(
        select(Community.id, Community.name, Street.name).join(Street, Street.id == Community.street_id)
        .where(Community.id.in_(community_ids))
    ).all()}
    org_ids = {a.organisation_id for a in rows if a.organisation_id is not None}
    orgs = dict(session.execute(select(Organisation.id, Organisation.name).where(Organisation.id.in_(org_ids or {-1}))).all())
    groups: dict[tuple[int, int | None], ActivityGroup] = {}
    for a in rows:
        key = (a.community_id, a.organisation_id)
        if key not in groups:
            community, street = places[a.community_id]
            groups[key] = ActivityGroup(
                street=street, community_id=a.community_id, community=community, organisation_id=a.organisation_id,
                organisation=orgs.get(a.organisation_id, "社区自办"), activities=[],
                totals=dict.fromkeys(("activities", *_ACTIVITY_TOTALS), 0),
            )
        g = groups[key]
        line = ActivityLine(
            id=a.id, title=a.title, kind=a.kind, held_on=a.held_on, place=a.place, participants=a.participants,
            unique_participants=a.unique_participants, direct_beneficiaries=a.direct_beneficiaries,
            indirect_beneficiaries=a.indirect_beneficiaries, volunteers=a.volunteers, leaflets=a.leaflets,
            backdated=a.backdated, **details[a.id],
        )
        g.activities.append(line)
        g.totals["activities"] += 1
        for c in _ACTIVITY_TOTALS:
            g.totals[c] += getattr(line, c)
    return sorted(groups.values(), key=lambda g: (g.street, g.community_id, g.organisation_id is None, g.organisation))


def build(session: Session, kind: ScopeKind, scope_id: int, month: str) -> MonthlyReport:
    if kind == ScopeKind.community:
        raise ValueError("the monthly report is for an organisation or a street")
    scope = resolve(session, kind, scope_id)
    period = month_period(month)
    lo, hi = period.bounds(scope.tz)
    pts_now, pts_all = points.points_measures(session, scope.community_ids, lo, hi), points.points_measures(session, scope.community_ids, None, hi)
    activity_figures, media_figures = people.programme_figures(session, scope, period)

    def fig(key, label, unit, a, b, records=None):
        return Figure(key=key, label=label, unit=unit, this_month=a, cumulative=b, records=records)

    ids = scope.community_ids
    grams_now, grams_all = waste.grams_by_group(session, ids, lo, hi), waste.grams_by_group(session, ids, None, hi)
    households_now, households_all = waste.participating_households(session, ids, lo, hi), waste.participating_households(session, ids, None, hi)
    total_now, total_all = sum(grams_now.values()), sum(grams_all.values())
    figures = [
        *_people(people.head_figures(session, scope, period)),
        fig("participating_households", "参与家庭", "户", households_now, households_all, records="participating_households"),
        fig("waste_reduced_kg", "垃圾减量合计", "kg", _kg(total_now), _kg(total_all), records="waste_reduced_kg"),
        fig("points_issued", "发放积分（含积分支票，发出时计）", "分", pts_now.issued, pts_all.issued, records="points_issued"),
        fig("points_redeemed", "兑换消耗（兑付时计）", "分", pts_now.redeemed, pts_all.redeemed, records="points_redeemed"),
        fig("points_held", "预约冻结积分（月末，未兑付）", "分", pts_now.held, pts_all.held, records="points_held"),
        fig("points_expired", "过期清零", "分", pts_now.expired, pts_all.expired, records="points_expired"),
        *_people(activity_figures),
        *_record_figures(session, scope, lo, hi),
        *_people(media_figures),
        fig("backdated_records", "其中补录记录（过后录入的回收称重、活动）", "条",
            recycling.backdated_weigh_ins(session, ids, period.start, period.end) + activities.backdated_count(session, ids, period.start, period.end),
            recycling.backdated_weigh_ins(session, ids, None, period.end) + activities.backdated_count(session, ids, None, period.end),
            records="backdated_records"),
    ]
    cities = set(community_cities(session, scope.community_ids).values())
    by_category = [
        fig(f"waste_{g.value}_kg", f"{group_label(g, cities)}减量", "kg", _kg(grams_now[g]), _kg(grams_all[g]), records=f"waste_{g.value}_kg")
        for g in GROUPS
    ]
    return MonthlyReport(
        scope=kind.value, scope_id=scope.id, name=scope.name, month=month, generated_at=utcnow(),
        figures=figures, waste_by_category=by_category, unavailable=dict(UNAVAILABLE),
        activities=_activity_groups(session, scope, period),
        definitions=[*(Definition(key=d.key, term=d.term, text=d.text) for d in people.definitions()),
                     *(Definition(key=m.value, term=_term(m, cities), text=waste.DEFINITIONS[m]) for m in waste.WASTE_MEASURES),
                     *(Definition(key=k, term=t, text=x) for k, t, x in points.DEFINITIONS)],
    )


def _term(measure: waste.WasteMeasure, cities: set[str]) -> str:
    """A waste measure's name in the report (the city's own group names)."""
    if measure == waste.WasteMeasure.participating_households:
        return "参与家庭"
    group = waste.measure_group(measure)
    return "垃圾减量合计" if group is None else f"{group_label(group, cities)}减量"


def detail_sheets(session: Session, report: MonthlyReport):
    """The waste measures' 明细 sheets of the report's XLSX: the records behind each this month."""
    scope = resolve(session, ScopeKind(report.scope), report.scope_id)
    lo, hi = month_period(report.month).bounds(scope.tz)
    return waste.detail_sheets(session, scope.community_ids, lo, hi, scope.tz)


def write_xlsx(report: MonthlyReport, path: str, details: list[Drilldown] | None = None, waste_details=()) -> None:
    """The workbook (app.reports.workbook): figures, activities, 说明, and a 明细 sheet per measure."""
    workbook.write(report, path, details or [], waste_details)
