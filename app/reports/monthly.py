"""The monthly report (月报) for an organisation or a street: "this month" and "cumulative" side by side.

Every figure is computed from records. Waste is summed in integer grams per category and the total is
the sum of the categories, so they always add up; units are fixed (kg with three decimals, points,
households, 人次). Figures whose records are not yet kept by the system (activities, beneficiaries,
volunteers, compost produced, media) are null and listed in `unavailable`, never guessed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, case, distinct, func, select
from sqlmodel import Field, Session, SQLModel

from app.core.db import utcnow
from app.identity.auth import Principal
from app.places.models import OrganisationCommunity
from app.reports.scope import Scope, ScopeKind, month_period, resolve
from app.reports.totals import ACC, CATEGORIES, ORIG, E, P, category_group

# Acts residents take part in (each is one attendance, 人次); redemptions and expiry are not acts.
ACTS = ("checkin", "compost", "recycling", "volunteer", "challenge")
UNAVAILABLE = {
    "activities": "活动记录",
    "activity_participants": "活动参与人次",
    "direct_beneficiaries": "直接受益人次",
    "indirect_beneficiaries": "间接受益人次",
    "volunteer_attendances": "志愿者参与人次",
    "volunteer_hours": "志愿服务时长",
    "compost_produced_kg": "堆肥产出",
    "media_items": "媒体传播",
    "media_reads": "点击阅读量",
}


class Figure(SQLModel):
    key: str
    label: str = Field(description="中文名称")
    unit: str
    this_month: float | int | None = Field(description="本月")
    cumulative: float | int | None = Field(description="累计（项目开始至本月末）")


class MonthlyReport(SQLModel):
    scope: str
    scope_id: int
    name: str
    month: str
    generated_at: datetime
    figures: list[Figure]
    waste_by_category: list[Figure] = Field(description="分类减量；合计等于各类之和")
    unavailable: dict[str, str] = Field(description="系统尚未记录、因此未填写的指标")
    activities: list[dict] = Field(default_factory=list, description="本月活动（按地区、机构分组）；活动记录接入后填写")


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
    acts, households, issued, redeemed = session.execute(
        select(
            func.coalesce(func.sum(case((is_act, case((E.c.reverses_entry_id.is_(None), 1), else_=-1)), else_=0)), 0),
            func.count(distinct(case((and_(is_act, E.c.reverses_entry_id.is_(None),
                                            ~E.c.id.in_(select(E.c.reverses_entry_id).where(E.c.reverses_entry_id.is_not(None)))),
                                       ACC.c.household_id)))),
            func.coalesce(func.sum(case((source.in_(("redemption", "expiry")), 0), else_=P.c.amount)), 0),
            func.coalesce(func.sum(case((source == "redemption", -P.c.amount), else_=0)), 0),
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
    return {"acts": int(acts), "households": int(households), "issued": int(issued), "redeemed": int(redeemed),
            "grams": grams, "communities": int(active or 0)}


def _kg(grams: int) -> float:
    return round(grams / 1000, 3)


def build(session: Session, principal: Principal | None, kind: ScopeKind, scope_id: int, month: str) -> MonthlyReport:
    if kind == ScopeKind.community:
        raise ValueError("the monthly report is for an organisation or a street")
    scope = resolve(session, principal, kind, scope_id)
    period = month_period(month)
    lo, hi = period.bounds(scope.tz)
    now_w, all_w = _window(session, scope, lo, hi), _window(session, scope, None, hi)
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
        fig("points_issued", "发放积分", "分", now_w["issued"], all_w["issued"]),
        fig("points_redeemed", "兑换积分", "分", now_w["redeemed"], all_w["redeemed"]),
        *(fig(k, v, "", None, None) for k, v in UNAVAILABLE.items()),
    ]
    by_category = [
        fig(f"waste_{c}_kg", f"{zh}减量", "kg", _kg(now_w["grams"][c]), _kg(all_w["grams"][c])) for c, zh in CATEGORIES
    ]
    return MonthlyReport(
        scope=kind.value, scope_id=scope.id, name=scope.name, month=month, generated_at=utcnow(),
        figures=figures, waste_by_category=by_category, unavailable=dict(UNAVAILABLE),
    )


def month_label(month: str) -> str:
    y, m = month.split("-")
    return f"{int(y)}年{int(m)}月"


def write_xlsx(report: MonthlyReport, path: str) -> None:
    import xlsxwriter

    wb = xlsxwriter.Workbook(path)
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
    for f in [*report.figures[:5], *report.waste_by_category, *report.figures[5:]]:
        fmt = kg if f.unit == "kg" else num
        ws.write(row, 0, f.label, text)
        ws.write(row, 1, f.unit, text)
        for col, v in ((2, f.this_month), (3, f.cumulative)):
            if v is None:
                ws.write(row, col, "未记录", text)
            else:
                ws.write_number(row, col, v, fmt)
        row += 1
    ws.write(row + 1, 0, "“未记录”：系统尚未记录这些数据，因此不填写估计值。垃圾减量合计等于各类之和。")
    wb.close()

