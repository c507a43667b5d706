"""People and programme measures of the reports: 伙伴机构, 开展社区, 开展活动, 参与人次 and 人, 宣传品,
受益人次, 媒体传播 and 阅读量. Each is defined once here (DEFINITIONS, shown in every report), computed
from the records, and can list the records behind it (`drilldown`), so a figure and its 明细 cannot
disagree.

Records of other domains are read as they are stored (activities, attendees, check-ins, drops,
weigh-ins, redemptions, challenge days, shifts, media items and readings): these measures are their
one reader for reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import distinct, func, literal, select, union_all
from sqlmodel import Session

from app.activities.models import Activity, ActivityAttendance, ChallengeDay, Enrolment
from app.activities.models import Challenge as ChallengeRow
from app.checkins.models import CheckIn
from app.compost.models import CompostDrop
from app.places.models import Building, Community, Household, Organisation, OrganisationCommunity, Street
from app.recycling.models import WeighIn
from app.reports.measures.detail import Drilldown, DrilldownColumn, col
from app.reports.models import MediaItem, MediaReading
from app.reports.scope import Period, Scope, ScopeKind
from app.rewards.models import Redemption
from app.volunteers.models import Shift as VolunteerShift

ACTIVITY = Activity.__table__
ATTENDANCE = ActivityAttendance.__table__
MEDIA = MediaItem.__table__
READING = MediaReading.__table__


# --- definitions (说明) -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Definition:
    key: str
    term: str
    text: str


DEFINITIONS: tuple[Definition, ...] = (
    Definition("partner_organisations", "伙伴机构",
               "网络报表：网络的伙伴机构数（网络本身不计）；机构报表：该机构本身（1家）；街道报表：在街道各社区开展项目的机构数。"),
    Definition("communities", "开展社区",
               "统计期内有任何记录的社区数：活动、桶边打卡、堆肥投放、回收称重、积分兑换、挑战打卡、志愿值守，任一种即计；"
               "累计为项目开始至期末有过记录的社区数（去重，不是各月相加）。"),
    Definition("activities", "开展活动", "统计期内举办（按活动日期）的活动场次。"),
    Definition("activity_participants", "参与人次",
               "活动参与人次：每场活动记录的到场人次之和，同一人参加两场计两次。本报告只有这一个“参与人次”。"),
    Definition("activity_people", "参与人数（人）",
               "在活动中按户登记（门牌）的参与者，统计期内每户只计一次（去重）；累计为项目开始至期末的去重户数，不是各月相加。"
               "只记录了人数、未登记参与者的活动不加总进人数，见“未登记参与者的活动”。"),
    Definition("activities_unnamed", "未登记参与者的活动",
               "参与人次多于已登记参与者的活动场次（只记录了人数，或只登记了一部分）；“其中未登记参与者的人次”为两者之差的合计。"),
    Definition("direct_beneficiaries", "直接受益人次", "每场活动记录的直接受益人次之和。"),
    Definition("indirect_beneficiaries", "间接受益人次（影响/触达）",
               "每场活动记录的间接受益人次之和（活动影响、触达的人次，估计值，由活动记录填写）。"),
    Definition("leaflets", "发放宣传品", "每场活动记录的宣传品（单页、手册等）份数之和。"),
    Definition("media_items", "媒体传播（篇）",
               "截至期末已登记、发布日期不晚于期末的媒体报道篇数为累计；本期 = 本期末累计 − 上期末累计。"
               "期末之后才登记的报道计入登记当月，已出的月报不因之改变。"),
    Definition("media_reads", "点击阅读量",
               "各篇报道截至期末最后一次登记的阅读量之和为累计；本期 = 本期末累计 − 上期末累计（本期新增的阅读）。"
               "读数按登记时间留存，期末之后的更新计入更新当月，重新生成过去月份的报告数字不变。"),
)


def definitions() -> list[Definition]:
    return list(DEFINITIONS)


# --- the figures --------------------------------------------------------------------------------

def _ids(scope: Scope) -> list[int]:
    return list(scope.community_ids) or [-1]


def partner_organisations(session: Session, scope: Scope) -> list[tuple[int, str]]:
    """(id, name) of the scope's partner organisations: a network's partners (never the network), the
    organisation itself, or the organisations running a street's or community's communities."""
    if scope.kind in (ScopeKind.network, ScopeKind.organisation):
        ids = list(scope.organisation_ids)
    else:
        ids = list(session.scalars(select(OrganisationCommunity.organisation_id).distinct()
                                   .where(OrganisationCommunity.community_id.in_(_ids(scope)))))
    return [tuple(r) for r in session.execute(
        select(Organisation.id, Organisation.name).where(Organisation.id.in_(ids or [-1])).order_by(Organisation.id)
    ).all()]


RECORD_KINDS = {
    "activity": "活动", "checkin": "桶边打卡", "compost_drop": "堆肥投放", "weigh_in": "回收称重",
    "redemption": "积分兑换", "challenge_day": "挑战打卡", "volunteer_shift": "志愿值守",
}


def records_by_community(session: Session, scope: Scope, period: Period | None, end: date) -> dict[int, dict[str, int]]:
    """{community id: {record kind: count}} of every record of any kind in the period (None: from the
    start to `end`), for the communities that have one. What 开展社区 counts."""
    tz = scope.tz
    start = period.start if period is not None else None
    lo = datetime.combine(start, datetime.min.time(), tz) if start is not None else None
    hi = datetime.combine(end + timedelta(days=1), datetime.min.time(), tz)
    ids = _ids(scope)

    def timed(kind: str, table, community, at, *extra):
        cond = [community.in_(ids), at < hi, *extra]
        if lo is not None:
            cond.append(at >= lo)
        return select(literal(kind).label("kind"), community.label("community_id"), func.count().label("n")).select_from(table) \
            .where(*cond).group_by(community)

    def dated(kind: str, table, community, day):
        cond = [community.in_(ids), day <= end]
        if start is not None:
            cond.append(day >= start)
        return select(literal(kind).label("kind"), community.label("community_id"), func.count().label("n")).select_from(table) \
            .where(*cond).group_by(community)

    checkin, drop, weigh, redemption, shift = (m.__table__ for m in (CheckIn, CompostDrop, WeighIn, Redemption, VolunteerShift))
    day, enrolment, challenge = ChallengeDay.__table__, Enrolment.__table__, ChallengeRow.__table__
    parts = [
        dated("activity", ACTIVITY, ACTIVITY.c.community_id, ACTIVITY.c.held_on),
        timed("checkin", checkin, checkin.c.community_id, checkin.c.scanned_at, checkin.c.status == "accepted"),
        timed("compost_drop", drop, drop.c.community_id, drop.c.dropped_at),
        timed("weigh_in", weigh, weigh.c.community_id, weigh.c.recorded_at),
        timed("redemption", redemption, redemption.c.community_id, redemption.c.created_at),
        dated("challenge_day", day.join(enrolment, enrolment.c.id == day.c.enrolment_id).join(challenge, challenge.c.id == enrolment.c.challenge_id),
              challenge.c.community_id, day.c.day),
        timed("volunteer_shift", shift, shift.c.community_id, shift.c.signed_in_at),
    ]
    found: dict[int, dict[str, int]] = {}
    for kind, community_id, n in session.execute(union_all(*parts)).all():
        found.setdefault(community_id, {})[kind] = int(n)
    return found


def _named_counts():
    return select(ATTENDANCE.c.activity_id, func.count().label("named")).group_by(ATTENDANCE.c.activity_id).subquery()


def _held(scope: Scope, start: date | None, end: date) -> list:
    cond = [ACTIVITY.c.community_id.in_(_ids(scope)), ACTIVITY.c.held_on <= end]
    if start is not None:
        cond.append(ACTIVITY.c.held_on >= start)
    return cond


def activity_figures(session: Session, scope: Scope, start: date | None, end: date) -> dict[str, int]:
    """Activities held on local days [start, end] (start None: since the start) and what they record."""
    named = _named_counts()
    n_named = func.coalesce(named.c.named, 0)
    row = session.execute(
        select(
            func.count(),
            *[func.coalesce(func.sum(ACTIVITY.c[c]), 0) for c in ("participants", "direct_beneficiaries", "indirect_beneficiaries",
                                                                  "volunteers", "leaflets")],
            func.count().filter(n_named < ACTIVITY.c.participants),
            func.coalesce(func.sum(ACTIVITY.c.participants - n_named), 0),
        ).select_from(ACTIVITY.outerjoin(named, named.c.activity_id == ACTIVITY.c.id)).where(*_held(scope, start, end))
    ).one()
    people = session.execute(
        select(func.count(distinct(ATTENDANCE.c.household_id)))
        .select_from(ATTENDANCE.join(ACTIVITY, ACTIVITY.c.id == ATTENDANCE.c.activity_id)).where(*_held(scope, start, end))
    ).scalar_one()
    keys = ("activities", "activity_participants", "direct_beneficiaries", "indirect_beneficiaries", "activity_volunteers",
            "leaflets", "activities_unnamed", "unnamed_attendances")
    return {**{k: int(v) for k, v in zip(keys, row, strict=True)}, "activity_people": int(people)}


def media_as_of(session: Session, scope: Scope, end: date, hi: datetime) -> dict[int, dict[str, Any]]:
    """{media item id: row} of the items counted at the close of local day `end` (instant `hi`):
    recorded before it and published by then, with the last reads recorded before it."""
    last = (select(READING.c.reads).where(READING.c.media_item_id == MEDIA.c.id, READING.c.recorded_at < hi)
            .order_by(READING.c.recorded_at.desc(), READING.c.id.desc()).limit(1).scalar_subquery())
    rows = session.execute(
        select(MEDIA.c.id, MEDIA.c.title, MEDIA.c.channel, MEDIA.c.published_on, MEDIA.c.community_id, MEDIA.c.activity_id,
               func.coalesce(last, 0))
        .where(MEDIA.c.community_id.in_(_ids(scope)), MEDIA.c.published_on <= end, MEDIA.c.created_at < hi)
        .order_by(MEDIA.c.published_on, MEDIA.c.id)
    ).all()
    return {r[0]: {"id": r[0], "title": r[1], "channel": r[2], "published_on": r[3], "community_id": r[4], "activity_id": r[5],
                   "reads": int(r[6])} for r in rows}


def _closes(scope: Scope, period: Period) -> tuple[tuple[date, datetime], tuple[date, datetime]]:
    """(day, instant) of the period's close and of the close before it."""
    lo, hi = period.bounds(scope.tz)
    return (period.end, hi), (period.start - timedelta(days=1), lo)


def media_figures(session: Session, scope: Scope, period: Period) -> dict[str, tuple[int, int]]:
    (end, hi), (prev_end, prev_hi) = _closes(scope, period)
    now, before = media_as_of(session, scope, end, hi), media_as_of(session, scope, prev_end, prev_hi)
    items = (len(now), len(before))
    reads = (sum(m["reads"] for m in now.values()), sum(m["reads"] for m in before.values()))
    return {"media_items": (items[0] - items[1], items[0]), "media_reads": (reads[0] - reads[1], reads[0])}


@dataclass(frozen=True)
class Value:
    key: str
    label: str
    unit: str
    this_month: int
    cumulative: int
    records: str  # the Measure whose drill-down lists the records behind it


LABELS = {
    "partner_organisations": ("伙伴机构", "家"),
    "communities": ("开展社区", "个"),
    "activities": ("开展活动", "场"),
    "activity_participants": ("活动参与人次", "人次"),
    "activity_people": ("活动参与人数（按户登记，去重）", "户"),
    "activities_unnamed": ("未登记参与者的活动", "场"),
    "unnamed_attendances": ("其中未登记参与者的人次", "人次"),
    "direct_beneficiaries": ("直接受益人次", "人次"),
    "indirect_beneficiaries": ("间接受益人次", "人次"),
    "activity_volunteers": ("活动志愿者人次", "人次"),
    "leaflets": ("发放宣传品", "份"),
    "media_items": ("媒体传播（篇）", "篇"),
    "media_reads": ("点击阅读量", "次"),
}


def _records_of(key: str) -> str:
    if key in ("partner_organisations", "communities"):
        return key
    if key == "activity_people":
        return "people"
    return "media" if key.startswith("media_") else "activities"


def _value(key: str, this_month: int, cumulative: int) -> Value:
    label, unit = LABELS[key]
    return Value(key, label, unit, this_month, cumulative, _records_of(key))


def head_figures(session: Session, scope: Scope, period: Period) -> list[Value]:
    """伙伴机构 and 开展社区: the first lines of the report."""
    partners = len(partner_organisations(session, scope))
    active_now = len(records_by_community(session, scope, period, period.end))
    active_all = len(records_by_community(session, scope, None, period.end))
    return [_value("partner_organisations", partners, partners), _value("communities", active_now, active_all)]


ACTIVITY_KEYS = ("activities", "activity_participants", "activity_people", "activities_unnamed", "unnamed_attendances",
                 "direct_beneficiaries", "indirect_beneficiaries", "activity_volunteers", "leaflets")


def programme_figures(session: Session, scope: Scope, period: Period) -> tuple[list[Value], list[Value]]:
    """(activity figures, media figures): this month and cumulative."""
    now = activity_figures(session, scope, period.start, period.end)
    every = activity_figures(session, scope, None, period.end)
    media = media_figures(session, scope, period)
    return ([_value(k, now[k], every[k]) for k in ACTIVITY_KEYS],
            [_value(k, *media[k]) for k in ("media_items", "media_reads")])


def activity_details(session: Session, scope: Scope, period: Period, activity_ids: list[int]) -> dict[int, dict[str, int]]:
    """{activity id: {named, media_items, media_reads}}: attendees named, and the media items reporting
    it as counted at the period's close (their reads then)."""
    named = dict(session.execute(
        select(ATTENDANCE.c.activity_id, func.count()).where(ATTENDANCE.c.activity_id.in_(activity_ids or [-1]))
        .group_by(ATTENDANCE.c.activity_id)
    ).all())
    (end, hi), _ = _closes(scope, period)
    out = {a: {"named": int(named.get(a, 0)), "media_items": 0, "media_reads": 0} for a in activity_ids}
    for m in media_as_of(session, scope, end, hi).values():
        if m["activity_id"] in out:
            out[m["activity_id"]]["media_items"] += 1
            out[m["activity_id"]]["media_reads"] += m["reads"]
    return out


# --- drill-down (明细): the records behind each figure ---------------------------------------------

class Measure(StrEnum):
    partner_organisations = "partner_organisations"
    communities = "communities"
    activities = "activities"
    people = "people"
    media = "media"


def _places(session: Session, community_ids) -> dict[int, tuple[str, str]]:
    return {cid: (name, street) for cid, name, street in session.execute(
        select(Community.id, Community.name, Street.name).join(Street, Street.id == Community.street_id)
        .where(Community.id.in_(list(community_ids) or [-1]))
    ).all()}


def _partners_drilldown(session: Session, scope: Scope, period: Period, cumulative: bool) -> Drilldown:
    partners = partner_organisations(session, scope)
    ran = dict(session.execute(
        select(OrganisationCommunity.organisation_id, func.count())
        .where(OrganisationCommunity.organisation_id.in_([p[0] for p in partners] or [-1]),
               OrganisationCommunity.community_id.in_(_ids(scope)))
        .group_by(OrganisationCommunity.organisation_id)
    ).all())
    return Drilldown(
        measure=Measure.partner_organisations, title="伙伴机构", figures={"partner_organisations": len(partners)},
        columns=[col("organisation_id", "机构编号", "int"), col("organisation", "机构"), col("communities", "开展项目的社区", "int", True)],
        rows=[{"organisation_id": i, "organisation": n, "communities": int(ran.get(i, 0))} for i, n in partners],
    )


def _communities_drilldown(session: Session, scope: Scope, period: Period, cumulative: bool) -> Drilldown:
    found = records_by_community(session, scope, None if cumulative else period, period.end)
    places = _places(session, found)
    rows = []
    for cid in sorted(found, key=lambda c: (places[c][1], places[c][0], c)):
        community, street = places[cid]
        rows.append({"community_id": cid, "street": street, "community": community,
                     **{k: found[cid].get(k, 0) for k in RECORD_KINDS}})
    return Drilldown(
        measure=Measure.communities, title="开展社区", figures={"communities": len(found)},
        columns=[col("community_id", "社区编号", "int"), col("street", "街道"), col("community", "社区"),
                 *[col(k, zh, "int", True) for k, zh in RECORD_KINDS.items()]],
        rows=rows,
    )


def _activities_drilldown(session: Session, scope: Scope, period: Period, cumulative: bool) -> Drilldown:
    start = None if cumulative else period.start
    rows = session.execute(
        select(ACTIVITY.c.id, ACTIVITY.c.held_on, ACTIVITY.c.community_id, ACTIVITY.c.organisation_id, ACTIVITY.c.title,
               ACTIVITY.c.kind, ACTIVITY.c.participants, ACTIVITY.c.direct_beneficiaries, ACTIVITY.c.indirect_beneficiaries,
               ACTIVITY.c.volunteers, ACTIVITY.c.leaflets)
        .where(*_held(scope, start, period.end)).order_by(ACTIVITY.c.held_on, ACTIVITY.c.id)
    ).all()
    details = activity_details(session, scope, period, [r.id for r in rows])
    places = _places(session, {r.community_id for r in rows})
    orgs = dict(session.execute(select(Organisation.id, Organisation.name)
                                .where(Organisation.id.in_({r.organisation_id for r in rows if r.organisation_id} or {-1}))).all())
    out = []
    for r in rows:
        d = details[r.id]
        out.append({
            "activity_id": r.id, "held_on": r.held_on, "street": places[r.community_id][1], "community": places[r.community_id][0],
            "organisation": orgs.get(r.organisation_id, "社区自办"), "title": r.title, "kind": r.kind,
            "participants": r.participants, "named": d["named"], "unnamed": r.participants - d["named"],
            "direct_beneficiaries": r.direct_beneficiaries, "indirect_beneficiaries": r.indirect_beneficiaries,
            "volunteers": r.volunteers, "leaflets": r.leaflets, "media_items": d["media_items"], "media_reads": d["media_reads"],
        })
    figures = activity_figures(session, scope, start, period.end)
    return Drilldown(
        measure=Measure.activities, title="活动", figures={k: figures[k] for k in ACTIVITY_KEYS if k != "activity_people"},
        columns=[col("activity_id", "活动编号", "int"), col("held_on", "日期", "date"), col("street", "街道"), col("community", "社区"),
                 col("organisation", "机构"), col("title", "活动"), col("kind", "类型"),
                 col("participants", "参与人次", "int", True), col("named", "已登记参与者", "int", True),
                 col("unnamed", "未登记人次", "int", True), col("direct_beneficiaries", "直接受益人次", "int", True),
                 col("indirect_beneficiaries", "间接受益人次", "int", True), col("volunteers", "志愿者人次", "int", True),
                 col("leaflets", "宣传品", "int", True), col("media_items", "媒体报道", "int", True),
                 col("media_reads", "阅读量（月末）", "int", True)],
        rows=out,
    )


def _people_drilldown(session: Session, scope: Scope, period: Period, cumulative: bool) -> Drilldown:
    """Every attendance named in the period's activities: who (by door plate, never a name or phone)
    at which activity. 人 is the number of distinct households among them."""
    start = None if cumulative else period.start
    rows = session.execute(
        select(ATTENDANCE.c.activity_id, ACTIVITY.c.held_on, ACTIVITY.c.title, ACTIVITY.c.community_id, Household.id,
               Building.name, Household.unit, Household.door_plate)
        .select_from(ATTENDANCE.join(ACTIVITY, ACTIVITY.c.id == ATTENDANCE.c.activity_id)
                     .join(Household, Household.id == ATTENDANCE.c.household_id).join(Building, Building.id == Household.building_id))
        .where(*_held(scope, start, period.end))
        .order_by(ACTIVITY.c.held_on, ATTENDANCE.c.activity_id, Building.name, Household.unit, Household.door_plate)
    ).all()
    places = _places(session, {r[3] for r in rows})
    first: set[int] = set()
    out = []
    for activity_id, held_on, title, community_id, household_id, building, unit, door_plate in rows:
        out.append({"activity_id": activity_id, "held_on": held_on, "title": title, "community": places[community_id][0],
                    "household_id": household_id, "building": building, "unit": unit, "door_plate": door_plate,
                    "first_time": household_id not in first})
        first.add(household_id)
    return Drilldown(
        measure=Measure.people, title="参与者", figures={"activity_people": len(first), "named_attendances": len(out)},
        columns=[col("activity_id", "活动编号", "int"), col("held_on", "日期", "date"), col("title", "活动"), col("community", "社区"),
                 col("household_id", "住户编号", "int"), col("building", "楼栋"), col("unit", "单元"), col("door_plate", "门牌"),
                 col("first_time", "首次（计入人数）", "bool")],
        rows=out,
    )


def _media_drilldown(session: Session, scope: Scope, period: Period, cumulative: bool) -> Drilldown:
    """The media items counted at the month's close with their reads then and at the close before:
    items new this month and the reads each added (cumulative: every item counted by the close)."""
    (end, hi), (prev_end, prev_hi) = _closes(scope, period)
    now = media_as_of(session, scope, end, hi)
    before = {} if cumulative else media_as_of(session, scope, prev_end, prev_hi)
    places = _places(session, {m["community_id"] for m in now.values()})
    rows = []
    for mid, m in now.items():
        earlier = before.get(mid)
        added = m["reads"] - (earlier["reads"] if earlier else 0)
        if earlier is not None and added == 0:
            continue  # counted before, no new reads: nothing of this month's figures comes from it
        rows.append({"media_item_id": mid, "published_on": m["published_on"], "community": places[m["community_id"]][0],
                     "title": m["title"], "channel": m["channel"], "activity_id": m["activity_id"],
                     "new_this_month": int(earlier is None), "reads_at_close": m["reads"],
                     "reads_before": earlier["reads"] if earlier else 0, "reads_this_month": added})
    figures = media_figures(session, scope, period)
    return Drilldown(
        measure=Measure.media, title="媒体传播", figures={k: v[1 if cumulative else 0] for k, v in figures.items()},
        columns=[col("media_item_id", "编号", "int"), col("published_on", "发布日期", "date"), col("community", "社区"),
                 col("title", "标题"), col("channel", "渠道"), col("activity_id", "活动编号", "int"),
                 col("new_this_month", "本月计入篇数", "int", True), col("reads_at_close", "月末阅读量", "int"),
                 col("reads_before", "上月末阅读量", "int"), col("reads_this_month", "本月阅读量", "int", True)],
        rows=rows,
    )


_DRILLDOWNS = {
    Measure.partner_organisations: _partners_drilldown,
    Measure.communities: _communities_drilldown,
    Measure.activities: _activities_drilldown,
    Measure.people: _people_drilldown,
    Measure.media: _media_drilldown,
}


def drilldown(session: Session, scope: Scope, period: Period, measure: Measure, *, cumulative: bool = False) -> Drilldown:
    """The records behind a measure's figures for the period (明细); cumulative: from the start to its end."""
    return _DRILLDOWNS[measure](session, scope, period, cumulative)


def drilldowns(session: Session, scope: Scope, period: Period) -> list[Drilldown]:
    return [f(session, scope, period, False) for f in _DRILLDOWNS.values()]


__all__ = [
    "DEFINITIONS", "Definition", "Drilldown", "DrilldownColumn", "Measure", "Value", "activity_details", "activity_figures",
    "definitions", "drilldown", "drilldowns", "head_figures", "media_as_of", "media_figures", "partner_organisations",
    "programme_figures", "records_by_community",
]
