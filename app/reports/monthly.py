"""The monthly report (月报) for an organisation or a street: "this month" and "cumulative" side by side.

Every figure is computed from records. Waste is summed in integer grams per category and the total is
the sum of the categories, so they always add up; units are fixed (kg with three decimals, points,
households, 人次, hours). Activities and their participants and beneficiaries come from activity records,
volunteer attendances and hours from finished shifts, compost produced from harvests, media items and
reads from media records; the month's activities are listed by region (street, community) and organisation.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import and_, case, distinct, func, select
from sqlmodel import Field, Session, SQLModel

from app.activities import service as activities
from app.compost import service as compost
from app.core.db import utcnow
from app.places.models import Community, Organisation, OrganisationCommunity, Street
from app.recycling import service as recycling
from app.reports.measures.points import points_measures
from app.reports.models import MediaItem
from app.reports.scope import Scope, ScopeKind, month_period, resolve
from app.reports.totals import ACC, CATEGORIES, ORIG, E, P, category_group
from app.volunteers import service as volunteers

# Acts residents take part in (each is one attendance, 人次); redemptions and expiry are not acts.
ACTS = ("checkin", "compost", "recycling", "volunteer", "challenge")
# Every figure has its records now; kept (empty) so clients that read `unavailable` keep working.
UNAVAILABLE: dict[str, str] = {}


class Figure(SQLModel):
    key: str
    label: str = Field(description="中文名称")
    unit: str
    this_month: float | int | None = Field(description="本月")
    cumulative: float | int | None = Field(description="累计（项目开始至本月末）")


class ActivityLine(SQLModel):
    id: int
    title: str
    kind: str
    held_on: date
    place: str
    participants: int = Field(description="参与人次")
    unique_participants: int | None = Field(description="参与人数（去重；未填写时为空）")
    direct_beneficiaries: int
    indirect_beneficiaries: int
    volunteers: int = Field(description="志愿者人次")
    media_items: int
    media_reads: int
    backdated: bool = Field(default=False, description="补录的活动（活动日期 3 天后才录入）")


class ActivityGroup(SQLModel):
    street: str
    community_id: int
    community: str
    organisation_id: int | None
    organisation: str = Field(description="主办机构；社区自办时为“社区自办”")
    activities: list[ActivityLine]
    totals: dict[str, int] = Field(description="本组合计：活动场次、人次、受益人次、志愿者人次、媒体")


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


def _window(session: Session, scope: Scope, lo: datetime | None, hi: datetime) -> dict:
    """Grams per category, acts, participating households and points between lo (None: the start) and hi."""
    occurred = func.coalesce(ORIG.c.occurred_at, E.c.occurred_at)
    source = func.coalesce(ORIG.c.source, E.c.source)
    cond = [ACC.c.community_id.in_(scope.community_ids), ACC.c.household_id.is_not(None), occurred < hi]
    if lo is not None:
        cond += [E.c.occurred_at >= lo, occurred >= lo]
    joined = P.join(ACC, ACC.c.id == P.c.account_id).join(E, E.c.id == P.c.entry_id).outerjoin(
        ORIG, ORIG.c.id == E.c.reverses_entry_id
    )
    is_act = source.in_(ACTS)
    # A reversal cancels the act it corrects: −1 attendance, and its household no longer counts.
    acts, households = session.execute(
        select(
            func.coalesce(func.sum(case((is_act, case((E.c.reverses_entry_id.is_(None), 1), else_=-1)), else_=0)), 0),
            func.count(distinct(case((and_(is_act, E.c.reverses_entry_id.is_(None),
                                            ~E.c.id.in_(select(E.c.reverses_entry_id).where(E.c.reverses_entry_id.is_not(None)))),
                                       ACC.c.household_id)))),
        ).select_from(joined).where(*cond)
    ).one()
    group = category_group(E.c.category)
    grams = dict.fromkeys((c for c, _ in CATEGORIES), 0)
    for g, total in session.execute(
        select(group, func.sum(E.c.quantity_g)).select_from(joined).where(*cond, E.c.quantity_g.is_not(None)).group_by(group)
    ).all():
        if g in grams:
            grams[g] += int(total or 0)
    active = session.execute(
        select(func.count(distinct(ACC.c.community_id))).select_from(joined).where(*cond, is_act)
    ).scalar()
    return {"acts": int(acts), "households": int(households), "grams": grams, "communities": int(active or 0)}


def _kg(grams: int) -> float:
    return round(grams / 1000, 3)


def _media(session: Session, scope: Scope, start: date | None, end: date) -> tuple[int, int]:
    t = MediaItem.__table__
    cond = [t.c.community_id.in_(scope.community_ids or (-1,)), t.c.published_on <= end]
    if start is not None:
        cond.append(t.c.published_on >= start)
    n, reads = session.execute(select(func.count(), func.coalesce(func.sum(t.c.reads), 0)).where(*cond)).one()
    return int(n), int(reads)


def _record_figures(session: Session, scope: Scope, start: date, end: date, lo: datetime, hi: datetime) -> list[Figure]:
    """Activities, volunteers, compost and media: this month (local days start..end, instants [lo, hi))
    and cumulative (everything up to the month's end)."""
    ids = scope.community_ids
    act_now, act_all = activities.sums(session, ids, start, end), activities.sums(session, ids, None, end)
    vol_now, vol_all = volunteers.served(session, ids, lo, hi), volunteers.served(session, ids, None, hi)
    compost_now, compost_all = compost.produced_g(session, ids, lo, hi)[None], compost.produced_g(session, ids, None, hi)[None]
    media_now, media_all = _media(session, scope, start, end), _media(session, scope, None, end)

    def fig(key, label, unit, a, b):
        return Figure(key=key, label=label, unit=unit, this_month=a, cumulative=b)

    def act(key, label, unit, column):
        return fig(key, label, unit, act_now[column], act_all[column])

    return [
        act("activities", "开展活动", "场", "activities"),
        act("activity_participants", "活动参与人次", "人次", "participants"),
        act("activity_unique_participants", "活动参与人数（已填写去重人数的活动）", "人", "unique_participants"),
        act("direct_beneficiaries", "直接受益人次", "人次", "direct_beneficiaries"),
        act("indirect_beneficiaries", "间接受益人次", "人次", "indirect_beneficiaries"),
        act("activity_volunteers", "活动志愿者参与人次", "人次", "volunteers"),
        fig("volunteer_attendances", "志愿者值守人次（签到签退记录）", "人次", vol_now[0], vol_all[0]),
        fig("volunteer_hours", "志愿服务时长", "小时", round(vol_now[1] / 60, 2), round(vol_all[1] / 60, 2)),
        fig("compost_produced_kg", "堆肥产出", "kg", _kg(compost_now), _kg(compost_all)),
        fig("media_items", "媒体传播（篇）", "篇", media_now[0], media_all[0]),
        fig("media_reads", "点击阅读量", "次", media_now[1], media_all[1]),
        fig("backdated_records", "其中补录记录（过后录入的回收称重、活动）", "条",
            recycling.backdated_weigh_ins(session, ids, start, end) + activities.backdated_count(session, ids, start, end),
            recycling.backdated_weigh_ins(session, ids, None, end) + activities.backdated_count(session, ids, None, end)),
    ]


_ACTIVITY_TOTALS = ("participants", "direct_beneficiaries", "indirect_beneficiaries", "volunteers", "media_items", "media_reads")


def _activity_groups(session: Session, scope: Scope, start: date, end: date) -> list[ActivityGroup]:
    """The month's activities by region (street, community) and organising organisation, with sums."""
    rows = activities.held(session, scope.community_ids, start, end)
    if not rows:
        return []
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
        g.activities.append(ActivityLine(
            id=a.id, title=a.title, kind=a.kind, held_on=a.held_on, place=a.place, participants=a.participants,
            unique_participants=a.unique_participants, direct_beneficiaries=a.direct_beneficiaries,
            indirect_beneficiaries=a.indirect_beneficiaries, volunteers=a.volunteers, media_items=a.media_items,
            media_reads=a.media_reads, backdated=a.backdated,
        ))
        g.totals["activities"] += 1
        for c in _ACTIVITY_TOTALS:
            g.totals[c] += getattr(a, c)
    return sorted(groups.values(), key=lambda g: (g.street, g.community_id, g.organisation_id is None, g.organisation))


def build(session: Session, kind: ScopeKind, scope_id: int, month: str) -> MonthlyReport:
    if kind == ScopeKind.community:
        raise ValueError("the monthly report is for an organisation or a street")
    scope = resolve(session, kind, scope_id)
    period = month_period(month)
    lo, hi = period.bounds(scope.tz)
    now_w, all_w = _window(session, scope, lo, hi), _window(session, scope, None, hi)
    pts_now, pts_all = points_measures(session, scope.community_ids, lo, hi), points_measures(session, scope.community_ids, None, hi)
    partners = session.execute(
        select(func.count(distinct(OrganisationCommunity.organisation_id)))
        .where(OrganisationCommunity.community_id.in_(scope.community_ids or (-1,)))
    ).scalar() or 0

    def fig(key, label, unit, a, b):
        return Figure(key=key, label=label, unit=unit, this_month=a, cumulative=b)

    total_now, total_all = sum(now_w["grams"].values()), sum(all_w["grams"].values())
    figures = [
        fig("partner_organisations", "伙伴机构", "家", partners, partners),
        fig("communities", "开展社区", "个", now_w["communities"], all_w["communities"]),
        fig("participating_households", "参与家庭", "户", now_w["households"], all_w["households"]),
        fig("attendances", "参与人次（打卡、堆肥、回收、志愿、挑战）", "人次", now_w["acts"], all_w["acts"]),
        fig("waste_reduced_kg", "垃圾减量合计", "kg", _kg(total_now), _kg(total_all)),
        fig("points_issued", "发放积分（含积分支票，发出时计）", "分", pts_now.issued, pts_all.issued),
        fig("points_redeemed", "兑换消耗（兑付时计）", "分", pts_now.redeemed, pts_all.redeemed),
        fig("points_held", "预约冻结积分（月末，未兑付）", "分", pts_now.held, pts_all.held),
        fig("points_expired", "过期清零", "分", pts_now.expired, pts_all.expired),
        *_record_figures(session, scope, period.start, period.end, lo, hi),
    ]
    by_category = [
        fig(f"waste_{c}_kg", f"{zh}减量", "kg", _kg(now_w["grams"][c]), _kg(all_w["grams"][c])) for c, zh in CATEGORIES
    ]
    return MonthlyReport(
        scope=kind.value, scope_id=scope.id, name=scope.name, month=month, generated_at=utcnow(),
        figures=figures, waste_by_category=by_category, unavailable=dict(UNAVAILABLE),
        activities=_activity_groups(session, scope, period.start, period.end),
    )


def month_label(month: str) -> str:
    y, m = month.split("-")
    return f"{int(y)}年{int(m)}月"


def write_xlsx(report: MonthlyReport, path: str) -> None:
    import xlsxwriter

    wb = xlsxwriter.Workbook(path, {"strings_to_formulas": False})  # titles and places are text (app.kit.cells)
    ws = wb.add_worksheet("月报")
    title = wb.add_format({"bold": True, "font_size": 14})
    head = wb.add_format({"bold": True, "bg_color": "#E8F0E0", "border": 1})
    num = wb.add_format({"num_format": "#,##0", "border": 1})
    kg = wb.add_format({"num_format": "#,##0.000", "border": 1})
    text = wb.add_format({"border": 1})
    ws.write(0, 0, f"{report.name} {month_label(report.month)}月报", title)
    ws.write_row(2, 0, ("指标", "单位", "本月", "累计"), head)
    ws.freeze_panes(3, 0)
    ws.set_column(0, 0, 36)
    ws.set_column(1, 1, 8)
    ws.set_column(2, 3, 16)
    row = 3
    hours = wb.add_format({"num_format": "#,##0.00", "border": 1})
    for f in [*report.figures[:5], *report.waste_by_category, *report.figures[5:]]:
        fmt = kg if f.unit == "kg" else hours if f.unit == "小时" else num
        ws.write(row, 0, f.label, text)
        ws.write(row, 1, f.unit, text)
        for col, v in ((2, f.this_month), (3, f.cumulative)):
            if v is None:
                ws.write(row, col, "未记录", text)
            else:
                ws.write_number(row, col, v, fmt)
        row += 1
    ws.write(row + 1, 0, "所有数字由系统记录计算；垃圾减量合计等于各类之和。")
    _activities_sheet(wb, report, head, num, text)
    wb.close()


ACTIVITY_HEADERS = ("街道", "社区", "机构", "日期", "活动", "地点", "参与人次", "参与人数", "直接受益人次", "间接受益人次",
                    "志愿者人次", "媒体报道", "阅读量", "补录")


def _activities_sheet(wb, report: MonthlyReport, head, num, text) -> None:
    """The month's activities, one row each, grouped by region and organisation with a subtotal row per group."""
    ws = wb.add_worksheet("活动")
    ws.write_row(0, 0, ACTIVITY_HEADERS, head)
    ws.freeze_panes(1, 0)
    ws.set_column(0, 2, 14)
    ws.set_column(4, 5, 24)
    bold = wb.add_format({"bold": True, "num_format": "#,##0", "border": 1})
    row = 1
    for g in report.activities:
        for a in g.activities:
            ws.write_row(row, 0, (g.street, g.community, g.organisation, a.held_on.isoformat(), a.title, a.place), text)
            if a.backdated:
                ws.write(row, len(ACTIVITY_HEADERS) - 1, "补录", text)
            for col, v in enumerate((a.participants, a.unique_participants, a.direct_beneficiaries, a.indirect_beneficiaries,
                                     a.volunteers, a.media_items, a.media_reads), 6):
                ws.write(row, col, "" if v is None else v, num)
            row += 1
        ws.write_row(row, 0, (g.street, g.community, g.organisation, "", f"小计（{g.totals['activities']}场）", ""), text)
        t = g.totals
        for col, v in enumerate((t["participants"], None, t["direct_beneficiaries"], t["indirect_beneficiaries"],
                                 t["volunteers"], t["media_items"], t["media_reads"]), 6):
            ws.write(row, col, "" if v is None else v, bold)
        row += 1

