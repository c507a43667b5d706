"""HTTP routes for reports: point totals exports for a community, a street or an organisation."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response, StreamingResponse

from app.core.db import SessionDep
from app.kit.errors import error_responses
from app.kit.headers import page_policy
from app.kit.pagination import DEFAULT_LIMIT, Cursor, Limit, Page
from app.reports import dashboard, media, rates, service
from app.reports.auth import (
    CommunityManager,
    CommunityReportReader,
    MediaItemManager,
    NetworkReportReader,
    OrganisationReportReader,
    StreetReportReader,
)
from app.reports.dashboard import Dashboard
from app.reports.measures.detail import Drilldown
from app.reports.measures.people import Measure
from app.reports.measures.points import POINTS_RECORDS
from app.reports.measures.programme import PROGRAMME_RECORDS
from app.reports.measures.waste import WASTE_MEASURES
from app.reports.models import (
    MediaItemCreate,
    MediaItemPublic,
    MediaItemRecorded,
    MediaItemUpdate,
    RankingSettingsPublic,
    RankingSettingsUpdate,
)
from app.reports.monthly import MonthlyReport
from app.reports.rates import Level, Rates, RedBlackList, Relapse, Retention
from app.reports.scope import ScopeKind
from app.reports.service import ExportFormat

api = APIRouter(prefix="/api/v1", tags=["reports"])
pages = APIRouter(include_in_schema=False)

_FILE = {
    200: {
        "content": {"text/csv": {}, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {}},
        "description": "CSV (UTF-8 with BOM) or XLSX: households, building subtotals, community subtotals",
    },
    **error_responses(400, 401, 403, 404, 422),
}
_DESCRIPTION = (
    "One row per household (building, unit and door plate — never a name or phone) with the opening balance, "
    "points earned by source, redeemed, expired, the closing balance and kg diverted by category; subtotals per "
    "building and per community. Period: `month` (YYYY-MM) or `start`/`end` local days; by default the current "
    "month. Every export is written to the audit log."
)

Month = Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}$", description="统计月份 YYYY-MM")]
Day = Annotated[date | None, Query(description="本地日期 YYYY-MM-DD（含）")]
Fmt = Annotated[ExportFormat, Query(description="csv 或 xlsx")]


def _stream(request: Request, session, principal, kind: ScopeKind, scope_id: int, fmt, month, start, end):
    export = service.export_totals(
        session, principal, kind, scope_id, fmt, month=month, start=start, end=end,
        request_id=getattr(request.state, "request_id", None),
    )
    return StreamingResponse(export.body, media_type=export.media_type, headers=export.headers)


@api.get(
    "/communities/{community_id}/reports/point-totals",
    summary="Export a community's point totals per household (CSV or XLSX)",
    description=_DESCRIPTION,
    response_class=StreamingResponse,
    responses=_FILE,
)
def community_totals(
    request: Request, session: SessionDep, principal: CommunityReportReader, community_id: int,
    format: Fmt = ExportFormat.csv, month: Month = None, start: Day = None, end: Day = None,
):
    return _stream(request, session, principal, ScopeKind.community, community_id, format, month, start, end)


@api.get(
    "/streets/{street_id}/reports/point-totals",
    summary="Export a street's point totals per household across its communities (CSV or XLSX)",
    description=_DESCRIPTION,
    response_class=StreamingResponse,
    responses=_FILE,
)
def street_totals(
    request: Request, session: SessionDep, principal: StreetReportReader, street_id: int,
    format: Fmt = ExportFormat.csv, month: Month = None, start: Day = None, end: Day = None,
):
    return _stream(request, session, principal, ScopeKind.street, street_id, format, month, start, end)


@api.get(
    "/organisations/{organisation_id}/reports/point-totals",
    summary="Export point totals per household across an organisation's communities (CSV or XLSX)",
    description=_DESCRIPTION,
    response_class=StreamingResponse,
    responses=_FILE,
)
def organisation_totals(
    request: Request, session: SessionDep, principal: OrganisationReportReader, organisation_id: int,
    format: Fmt = ExportFormat.csv, month: Month = None, start: Day = None, end: Day = None,
):
    return _stream(request, session, principal, ScopeKind.organisation, organisation_id, format, month, start, end)


# --- the monthly report (月报) ---------------------------------------------------------------------

_MONTHLY = {
    200: {
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/MonthlyReport"}},
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {},
            "text/html": {},
        },
        "description": "JSON, XLSX or a printable page",
    },
    **error_responses(400, 401, 403, 404, 422),
}
_READ_DETAIL = error_responses(400, 401, 403, 404, 422)
_MONTHLY_DESCRIPTION = (
    "Partner organisations, communities, participating households, attendances (人次), waste reduced in kg in total "
    "and by category (厨余, 可回收物, 有害垃圾, 其他垃圾; the total is the sum of the categories), points issued and "
    "redeemed, activities with their participants (人次 and 人) and beneficiaries, volunteer attendances and hours, "
    "compost produced, media items and reads — \"this month\" and \"cumulative\" as separate columns — then the "
    "month's activities grouped by region (street, community) and organisation. Kilograms and participating households "
    "come from the records (weigh-ins, walk-ins included; compost drops; weighed check-ins graded correct; less "
    "reversals), never from points. Each figure's `records` names its drill-down, `.../monthly/records/{records}`, which "
    "lists the records behind it. `format`: json, xlsx (the "
    "figures, the activities, a 说明 sheet with every definition and a 明细 sheet per measure) or html (printable). Audited."
)
MonthlyFmt = Annotated[service.MonthlyFormat, Query(description="json、xlsx 或 html（可打印）")]


def _monthly(request: Request, session, principal, kind: ScopeKind, scope_id: int, month, fmt):
    result = service.monthly_report(session, principal, kind, scope_id, month, fmt,
                                    request_id=getattr(request.state, "request_id", None))
    if fmt == service.MonthlyFormat.json:
        return result
    if fmt == service.MonthlyFormat.html:
        return HTMLResponse(result)
    name = f"月报_{scope_id}_{month or 'current'}.xlsx"
    return Response(result, media_type=service.MEDIA_TYPES[ExportFormat.xlsx],
                    headers={"Content-Disposition": f"attachment; filename=\"monthly-{scope_id}.xlsx\"; filename*=UTF-8''{quote(name)}"})


@api.get(
    "/organisations/{organisation_id}/reports/monthly",
    summary="The monthly report (月报) of an organisation: this month and cumulative",
    description=_MONTHLY_DESCRIPTION,
    response_model=MonthlyReport,
    responses=_MONTHLY,
)
def organisation_monthly(request: Request, session: SessionDep, principal: OrganisationReportReader, organisation_id: int,
                         month: Month = None, format: MonthlyFmt = service.MonthlyFormat.json):
    return _monthly(request, session, principal, ScopeKind.organisation, organisation_id, month, format)


@api.get(
    "/streets/{street_id}/reports/monthly",
    summary="The monthly report (月报) of a street: this month and cumulative",
    description=_MONTHLY_DESCRIPTION,
    response_model=MonthlyReport,
    responses=_MONTHLY,
)
def street_monthly(request: Request, session: SessionDep, principal: StreetReportReader, street_id: int,
                   month: Month = None, format: MonthlyFmt = service.MonthlyFormat.json):
    return _monthly(request, session, principal, ScopeKind.street, street_id, month, format)


@api.get(
    "/networks/{network_id}/reports/monthly",
    summary="The monthly report (月报) of a network of partner organisations: this month and cumulative",
    description=_MONTHLY_DESCRIPTION + " A network's report covers the communities its partner organisations run and counts "
    "its partners (伙伴机构), never itself. Read by platform admins and the admins of its coordinating organisation.",
    response_model=MonthlyReport,
    responses=_MONTHLY,
)
def network_monthly(request: Request, session: SessionDep, principal: NetworkReportReader, network_id: int,
                    month: Month = None, format: MonthlyFmt = service.MonthlyFormat.json):
    return _monthly(request, session, principal, ScopeKind.network, network_id, month, format)


# --- drill-down: the records behind each figure of the monthly report -----------------------------

RecordsMeasure = StrEnum("RecordsMeasure", {m: m for m in (*(m.value for m in Measure), *(m.value for m in WASTE_MEASURES),
                                                             *POINTS_RECORDS, *PROGRAMME_RECORDS)})
Cumulative = Annotated[bool, Query(description="true：累计（项目开始至本月末）；默认本月")]
_DRILLDOWN_DESCRIPTION = (
    "The records behind a figure of the monthly report (明细), computed as the report computes it; `measure` is the "
    "figure's `records` key. Kilograms (`waste_reduced_kg`, `waste_kitchen_kg`, `waste_recyclable_kg`, `waste_hazardous_kg`, "
    "`waste_other_kg`): each weigh-in, compost drop and check-in counted, with its day, door plate (empty for a walk-in whose "
    "cheque nobody claimed), category, group, grams and points, in the order they happened, a correction of an earlier "
    "month's record as a negative 冲正 row at its own time; their grams add up to the figure. `participating_households`: "
    "each household by door plate with its acts. Points (`points_issued`, `points_redeemed`, `points_expired`): each ledger "
    "entry counted, with its day, source, memo, door plate and points (a correction at its own time); `points_held`: each "
    "household's points held by open reservations at the month's end. `volunteer_shifts` (the finished shifts behind "
    "volunteer attendances and hours), `compost_harvests` (compost produced), `backdated_records` (the back-dated weigh-ins "
    "and activities, with their reasons). `partner_organisations` (the organisations counted), `communities` (each "
    "community active and its records by kind), `activities` (each activity held: 人次, attendees named, leaflets, "
    "beneficiaries, media), `people` (each named attendance, by door plate; 人 is the number of distinct households), `media` "
    "(items counted and the reads each added). One shape for all: `columns` (which to total), `rows`, `figures` (the "
    "figure's value over every page), `next_cursor`. `cumulative=true`: from the start to the month's end. Same scope and "
    "readers as the report; the first page is audited."
)


def _drilldown(request: Request, session, principal, kind: ScopeKind, scope_id: int, month, measure, cumulative, cursor, limit):
    return service.monthly_drilldown(session, principal, kind, scope_id, month, measure.value, cumulative=cumulative,
                                     cursor=cursor, limit=limit, request_id=getattr(request.state, "request_id", None))


@api.get("/networks/{network_id}/reports/monthly/records/{measure}", summary="The records behind a figure of a network's monthly report",
         description=_DRILLDOWN_DESCRIPTION, response_model=Drilldown, responses=_READ_DETAIL)
def network_drilldown(request: Request, session: SessionDep, principal: NetworkReportReader, network_id: int, measure: RecordsMeasure,
                      month: Month = None, cumulative: Cumulative = False, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT):
    return _drilldown(request, session, principal, ScopeKind.network, network_id, month, measure, cumulative, cursor, limit)


@api.get("/organisations/{organisation_id}/reports/monthly/records/{measure}",
         summary="The records behind a figure of an organisation's monthly report", description=_DRILLDOWN_DESCRIPTION,
         response_model=Drilldown, responses=_READ_DETAIL)
def organisation_drilldown(request: Request, session: SessionDep, principal: OrganisationReportReader, organisation_id: int,
                           measure: RecordsMeasure, month: Month = None, cumulative: Cumulative = False, cursor: Cursor = None,
                           limit: Limit = DEFAULT_LIMIT):
    return _drilldown(request, session, principal, ScopeKind.organisation, organisation_id, month, measure, cumulative, cursor, limit)


@api.get("/streets/{street_id}/reports/monthly/records/{measure}", summary="The records behind a figure of a street's monthly report",
         description=_DRILLDOWN_DESCRIPTION, response_model=Drilldown, responses=_READ_DETAIL)
def street_drilldown(request: Request, session: SessionDep, principal: StreetReportReader, street_id: int, measure: RecordsMeasure,
                     month: Month = None, cumulative: Cumulative = False, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT):
    return _drilldown(request, session, principal, ScopeKind.street, street_id, month, measure, cumulative, cursor, limit)


# --- rates and the red and black list (红黑榜) -----------------------------------------------------

_READ = error_responses(400, 401, 403, 404, 422)
By = Annotated[Level, Query(description="community（仅社区合计）、compound（按小区）或 building（按楼栋）")]
_PRIVACY = (" Groups with fewer than 5 registered households are left out and counted in `hidden`; accuracy over fewer "
            "than 5 participating households is null. No household is ever named.")


@api.get(
    "/communities/{community_id}/reports/rates",
    summary="Participation rate and sorting accuracy for a period, for the community and per compound or building",
    description="From check-in records (accepted, not corrected), local days in the community's time zone. Period: "
    "`month` or `start`/`end`; by default the current month." + _PRIVACY,
    response_model=Rates,
    responses=_READ,
)
def community_rates(session: SessionDep, principal: CommunityReportReader, community_id: int, by: By = Level.compound,
                    month: Month = None, start: Day = None, end: Day = None):
    return rates.rates(session, community_id, by, month=month, start=start, end=end)


@api.get(
    "/communities/{community_id}/reports/retention",
    summary="Month-on-month retention: households active this month among those active last month",
    description="Active: at least one accepted check-in in the local month. By default the current month." + _PRIVACY,
    response_model=Retention,
    responses=_READ,
)
def community_retention(session: SessionDep, principal: CommunityReportReader, community_id: int, by: By = Level.compound,
                        month: Month = None):
    return rates.retention(session, community_id, by, month)


@api.get(
    "/communities/{community_id}/reports/relapse",
    summary="Relapse after a campaign: participation and accuracy during it against the same number of days after",
    description="The campaign is `start`/`end` local days, or a challenge (`challenge_id`) of the community. The drop "
    "is during − after; `after_complete` is false while the days after have not all passed." + _PRIVACY,
    response_model=Relapse,
    responses=_READ,
)
def community_relapse(session: SessionDep, principal: CommunityReportReader, community_id: int, by: By = Level.compound,
                      start: Day = None, end: Day = None, challenge_id: Annotated[int | None, Query()] = None):
    return rates.relapse(session, community_id, by, start=start, end=end, challenge_id=challenge_id)


@api.get(
    "/communities/{community_id}/reports/red-black-list",
    summary="The red and black list (红黑榜) of compounds or buildings for a period",
    description="Red: accuracy and participation at or above the committee's thresholds; black: either below. Only "
    "groups whose figures are over at least 5 households (registered and participating) are ranked; the others are "
    "counted in `hidden`. No household is ever named.",
    response_model=RedBlackList,
    responses=_READ,
)
def community_red_black_list(session: SessionDep, principal: CommunityReportReader, community_id: int,
                             by: By = Level.building, month: Month = None, start: Day = None, end: Day = None):
    return rates.red_black_list(session, community_id, by, month=month, start=start, end=end)


@api.get(
    "/communities/{community_id}/reports/ranking-settings",
    summary="The red and black list thresholds of a community",
    response_model=RankingSettingsPublic,
    responses=_READ,
)
def read_ranking_settings(session: SessionDep, principal: CommunityReportReader, community_id: int):
    return rates.read_settings(session, community_id)


@api.put(
    "/communities/{community_id}/reports/ranking-settings",
    summary="Set the red and black list thresholds (committee or organisation; audited)",
    response_model=RankingSettingsPublic,
    responses=error_responses(400, 401, 403, 404, 422),
)
def update_ranking_settings(session: SessionDep, principal: CommunityManager, community_id: int, data: RankingSettingsUpdate):
    return rates.update_settings(session, principal, community_id, data)


# --- media items (媒体传播) ------------------------------------------------------------------------

@api.post(
    "/communities/{community_id}/media-items",
    summary="Record a media item (title, channel, published date, reads) for the monthly report",
    status_code=201,
    response_model=MediaItemRecorded,
    responses=error_responses(400, 401, 403, 404, 409, 422),
)
def create_media_item(session: SessionDep, principal: CommunityManager, community_id: int, data: MediaItemCreate):
    return media.create(session, principal, community_id, data)


@api.patch(
    "/media-items/{media_item_id}",
    summary="Correct a media item or update its reads (audited)",
    response_model=MediaItemPublic,
    responses=error_responses(400, 401, 403, 404, 422),
)
def update_media_item(session: SessionDep, principal: MediaItemManager, media_item_id: int, data: MediaItemUpdate):
    return media.update(session, principal, media_item_id, data)


@api.get(
    "/communities/{community_id}/media-items",
    summary="Media items of a community",
    response_model=Page[MediaItemPublic],
    responses=_READ,
)
def list_media_items(
    session: SessionDep, principal: CommunityReportReader, community_id: int, start: Day = None, end: Day = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None, limit: Annotated[int, Query(ge=1, le=200)] = 50,
):
    items, next_cursor = media.list_items(session, community_id, start, end, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)


# --- dashboard --------------------------------------------------------------------------------

_STATIC = Path(__file__).resolve().parents[1] / "static"


@api.get(
    "/communities/{community_id}/reports/dashboard",
    summary="The committee dashboard's figures: check-ins by day, kg by category by month, participation, points",
    response_model=Dashboard,
    responses=error_responses(401, 403, 404, 422),
)
def community_dashboard(session: SessionDep, principal: CommunityReportReader, community_id: int):
    return dashboard.build(session, community_id)


@pages.get("/reports/dashboard")
def dashboard_page():
    """The page signs in with a password and reads everything through the API with its token. Its
    policy admits this origin's scripts and its own inline script, by hash."""
    html = (_STATIC / "reports" / "dashboard.html").read_text(encoding="utf-8")
    return HTMLResponse(html, headers={"Content-Security-Policy": page_policy(html)})


@pages.get("/static/echarts.min.js")
def echarts_js():
    """Apache ECharts (from the npm package `echarts`, Apache-2.0), served by the app: no CDN."""
    return FileResponse(_STATIC / "echarts.min.js", media_type="text/javascript",
                        headers={"Cache-Control": "public, max-age=86400"})


router = APIRouter()
router.include_router(api)
router.include_router(pages)
