"""The records behind the monthly report's remaining figures: volunteer attendances and hours (finished
shifts), compost produced (harvests) and 其中补录记录 (back-dated weigh-ins and activities). Each lists
the rows its figure's own domain function counts, through the same conditions (`served_shifts`,
`harvested`, `backdated`), so a figure and its 明细 cannot disagree."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import literal, select, union_all
from sqlmodel import Session

from app.activities import service as activities
from app.activities.models import Activity
from app.compost import service as compost
from app.compost.models import CompostBin, CompostHarvest, CompostSite
from app.places.models import Community
from app.recycling import service as recycling
from app.recycling.models import RecyclingEvent, WeighIn
from app.reports.measures.detail import Drilldown, col
from app.volunteers import service as volunteers
from app.volunteers.models import Shift, VolunteerTeam

PROGRAMME_RECORDS = ("volunteer_shifts", "compost_harvests", "backdated_records")
SH, TEAM, C = Shift.__table__, VolunteerTeam.__table__, Community.__table__
HV, BIN, SITE = CompostHarvest.__table__, CompostBin.__table__, CompostSite.__table__
W, EV, ACT = WeighIn.__table__, RecyclingEvent.__table__, Activity.__table__


def _shifts(session: Session, ids, lo: datetime | None, hi: datetime, tz: ZoneInfo) -> Drilldown:
    rows = session.execute(
        select(SH.c.id, SH.c.signed_in_at, C.c.name, TEAM.c.name, SH.c.minutes)
        .select_from(SH.join(C, C.c.id == SH.c.community_id).outerjoin(TEAM, TEAM.c.id == SH.c.team_id))
        .where(*volunteers.served_shifts(ids, lo, hi)).order_by(SH.c.signed_in_at, SH.c.id)
    ).all()
    minutes = sum(int(r[4]) for r in rows)
    return Drilldown(
        measure="volunteer_shifts", title="志愿者值守", figures={"volunteer_attendances": len(rows), "volunteer_hours": round(minutes / 60, 2)},
        columns=[col("local_date", "日期", "date"), col("shift_id", "值守编号", "int"), col("community", "社区"), col("team", "志愿队"),
                 col("minutes", "时长（分钟）", "int", True)],
        rows=[{"local_date": at.astimezone(tz).date(), "shift_id": i, "community": c, "team": team, "minutes": int(m)}
              for i, at, c, team, m in rows],
    )


def _harvests(session: Session, ids, lo: datetime | None, hi: datetime, tz: ZoneInfo) -> Drilldown:
    rows = session.execute(
        select(HV.c.id, HV.c.harvested_at, C.c.name, SITE.c.name, BIN.c.name, HV.c.cycle, HV.c.compost_g)
        .select_from(HV.join(C, C.c.id == HV.c.community_id).join(BIN, BIN.c.id == HV.c.bin_id).join(SITE, SITE.c.id == BIN.c.site_id))
        .where(*compost.harvested(ids, lo, hi)).order_by(HV.c.harvested_at, HV.c.id)
    ).all()
    return Drilldown(
        measure="compost_harvests", title="堆肥产出", figures={"compost_produced_kg": round(sum(int(r[6]) for r in rows) / 1000, 3)},
        columns=[col("local_date", "日期", "date"), col("harvest_id", "出肥编号", "int"), col("community", "社区"), col("site", "堆肥点"),
                 col("bin", "堆肥箱"), col("cycle", "批次", "int"), col("compost_g", "出肥（克）", "int", True)],
        rows=[{"local_date": at.astimezone(tz).date(), "harvest_id": i, "community": c, "site": site, "bin": b, "cycle": cycle,
               "compost_g": int(g)} for i, at, c, site, b, cycle, g in rows],
    )


def _backdated(session: Session, ids, start: date | None, end: date) -> Drilldown:
    weigh_ins = (
        select(literal("weigh_in").label("kind"), W.c.id.label("record_id"), EV.c.occurs_on.label("day"), W.c.community_id,
               EV.c.place.label("what"), W.c.backdate_reason.label("reason"))
        .select_from(W.join(EV, EV.c.id == W.c.event_id)).where(*recycling.backdated(ids, start, end))
    )
    acts = select(literal("activity"), ACT.c.id, ACT.c.held_on, ACT.c.community_id, ACT.c.title, ACT.c.backdate_reason) \
        .where(*activities.backdated(ids, start, end))
    both = union_all(weigh_ins, acts).subquery()
    rows = session.execute(
        select(both.c.kind, both.c.record_id, both.c.day, C.c.name, both.c.what, both.c.reason)
        .select_from(both.join(C, C.c.id == both.c.community_id)).order_by(both.c.day, both.c.kind, both.c.record_id)
    ).all()
    kinds = {"weigh_in": "回收日称重", "activity": "活动"}
    return Drilldown(
        measure="backdated_records", title="补录记录", figures={"backdated_records": len(rows)},
        columns=[col("day", "日期", "date"), col("kind_name", "记录类型"), col("record_id", "记录编号", "int"), col("community", "社区"),
                 col("what", "回收日地点 / 活动"), col("reason", "补录原因")],
        rows=[{"day": day, "kind": k, "kind_name": kinds[k], "record_id": i, "community": c, "what": what, "reason": reason}
              for k, i, day, c, what, reason in rows],
    )


def drilldown(session: Session, measure: str, community_ids, lo: datetime | None, hi: datetime, tz: ZoneInfo,
              start: date | None, end: date) -> Drilldown:
    """The records behind a programme figure over [lo, hi) (local days [start, end]; lo and start None: cumulative)."""
    ids = list(community_ids)
    if measure == "volunteer_shifts":
        return _shifts(session, ids, lo, hi, tz)
    if measure == "compost_harvests":
        return _harvests(session, ids, lo, hi, tz)
    return _backdated(session, ids, start, end)


__all__ = ["PROGRAMME_RECORDS", "drilldown"]
