"""HTTP routes for roster import: upload a spreadsheet, read the report, download the error file."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Header, Request, Response, UploadFile

from app.core.db import SessionDep
from app.kit.errors import error_responses, wants_english
from app.kit.formats import content, file_response, formats
from app.kit.pagination import DEFAULT_LIMIT, Cursor, Limit, Page
from app.roster import service
from app.roster.auth import CommunityManager, ImportManager
from app.roster.models import ImportMode, RosterImportPublic, RosterImportSummary
from app.roster.reader import MAX_BYTES

router = APIRouter(prefix="/api/v1", tags=["roster"])


@router.post(
    "/communities/{community_id}/roster-imports",
    summary="Import a household roster (XLSX or CSV), or check it first",
    description=(
        "Columns (Chinese or English headers): 楼栋/building, 单元/unit, 门牌/door_plate, 人数/members, "
        "电话/phone, 姓名/name (the name is never stored), optionally 小区/compound. CSV may be UTF-8 (with or "
        "without BOM) or GBK; in XLSX a merged 楼栋 cell applies to every row it covers. "
        "`mode`: `dry_run` reports the problems and stores nothing; `valid_rows` imports the valid rows in "
        "one transaction and reports the others (download them from `errors_url`); `all_or_nothing` imports "
        "only when every row is valid. Re-importing the same file creates nothing new. "
        "A retried upload (same `Idempotency-Key` header; without one, the same file, mode and options with no "
        "other import in between, within 10 minutes) answers 200 with the first report (`replayed: true`) and stores nothing."
    ),
    status_code=201,
    response_model=RosterImportPublic,
    responses={
        200: {"model": RosterImportPublic, "description": "A retried upload: the first report (replayed), nothing imported again"},
        **error_responses(400, 401, 403, 404, 409, 422),
    },
)
def import_roster(
    request: Request,
    response: Response,
    session: SessionDep,
    principal: CommunityManager,
    community_id: int,
    file: Annotated[UploadFile, File(description="花名册文件（.xlsx 或 .csv）")],
    mode: Annotated[ImportMode, Form(description="dry_run 仅检查；valid_rows 导入有效行；all_or_nothing 全部有效才导入")] = ImportMode.dry_run,
    compound_id: Annotated[int | None, Form(description="只匹配该小区的楼栋；自动创建楼栋时必填")] = None,
    create_buildings: Annotated[bool, Form(description="文件中不存在的楼栋自动创建在所选小区下")] = False,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=8, max_length=80, description="每次上传一个新值；超时重试时沿用")
    ] = None,
):
    data = file.file.read(MAX_BYTES + 1)
    options = service.ImportOptions(mode=mode, compound_id=compound_id, create_buildings=create_buildings)
    record, replayed = service.import_roster_as(session, principal, community_id, data, file.filename or "", options, idempotency_key)
    if replayed:
        response.status_code = 200
    return service.to_public(record, wants_english(request), replayed)


@router.get(
    "/roster-imports/{import_id}",
    summary="Read the report of a roster import",
    response_model=RosterImportPublic,
    responses=error_responses(401, 403, 404, 422),
)
def read_import(request: Request, session: SessionDep, principal: ImportManager, import_id: int):
    return service.to_public(service.get_import(session, import_id), wants_english(request))


ErrorsFormat = formats("ImportErrorsFormat", "csv")
RosterFormat = formats("RosterFormat", "xlsx")


@router.get(
    "/roster-imports/{import_id}/errors",
    summary="Download the problems of a roster import (CSV for Excel: row, column, problem)",
    response_class=Response,
    responses={**content("UTF-8 CSV with BOM", "csv"), **error_responses(401, 403, 404, 422)},
)
def import_errors(request: Request, session: SessionDep, principal: ImportManager, import_id: int, format: ErrorsFormat = "csv"):
    record = service.get_import(session, import_id)
    return file_response(service.errors_csv(record, wants_english(request)), format, f"roster-import-{record.id}-errors.csv")


@router.get(
    "/communities/{community_id}/roster-imports",
    summary="List the roster imports of a community, newest first",
    response_model=Page[RosterImportSummary],
    responses=error_responses(400, 401, 403, 404, 422),
)
def list_imports(
    session: SessionDep,
    principal: CommunityManager,
    community_id: int,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
):
    items, next_cursor = service.list_imports(session, community_id, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)


@router.get(
    "/communities/{community_id}/roster",
    summary="Download the community's roster as XLSX, in the import format (edit it and import it back)",
    response_class=Response,
    responses={**content("XLSX", "xlsx"), **error_responses(401, 403, 404, 422)},
)
def export_roster(session: SessionDep, principal: CommunityManager, community_id: int, format: RosterFormat = "xlsx"):
    return file_response(service.export_roster(session, principal, community_id), format, f"roster-{community_id}.xlsx")
