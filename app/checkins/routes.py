"""HTTP routes for stations, drop-off windows and bin-side check-ins (single scan and offline batches)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.checkins import service
from app.checkins.auth import (
    CheckInCorrector,
    CheckInFieldStaff,
    CommunityManager,
    CommunityStaff,
    HouseholdMemberOrStaff,
    ScanningFieldStaff,
    StationManager,
    WindowManager,
)
from app.checkins.models import (
    AmendmentIn,
    BatchResult,
    CheckInPublic,
    CheckInStats,
    DropWindowCreate,
    DropWindowPublic,
    DropWindowUpdate,
    ScanBatch,
    ScanIn,
    ScanResult,
    ScanStatus,
    StationCreate,
    StationPublic,
    StationUpdate,
)
from app.core.db import SessionDep
from app.kit.errors import error_responses
from app.kit.fields import Day
from app.kit.pagination import DEFAULT_LIMIT, Cursor, Limit, Page
from app.kit.period import End, Start
from app.places.auth import CommunityResidentOrStaff
from app.rules.models import ReversalCreate

router = APIRouter(prefix="/api/v1", tags=["check-ins"])
READ = error_responses(400, 401, 403, 404, 422)
WRITE = error_responses(400, 401, 403, 404, 409, 422)


@router.post("/communities/{community_id}/stations", summary="Create a drop-off station (投放点)", status_code=201, response_model=StationPublic, responses=WRITE)
def create_station(session: SessionDep, principal: CommunityManager, community_id: int, data: StationCreate):
    return service.create_station(session, principal, community_id, data)


@router.get("/communities/{community_id}/stations", summary="List the drop-off stations of a community (where to put rubbish out: staff and residents)", response_model=Page[StationPublic], responses=READ)
def list_stations(session: SessionDep, principal: CommunityResidentOrStaff, community_id: int, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT):
    items, next_cursor = service.list_stations(session, community_id, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)


@router.patch("/stations/{station_id}", summary="Rename, move or deactivate a station", response_model=StationPublic, responses=WRITE)
def update_station(session: SessionDep, principal: StationManager, station_id: int, data: StationUpdate):
    return service.update_station(session, principal, station_id, data)


@router.post("/communities/{community_id}/drop-windows", summary="Create a drop-off window (定时定点, local time)", status_code=201, response_model=DropWindowPublic, responses=WRITE)
def create_window(session: SessionDep, principal: CommunityManager, community_id: int, data: DropWindowCreate):
    return service.create_window(session, principal, community_id, data)


@router.get("/communities/{community_id}/drop-windows", summary="List the drop-off windows of a community (when to put rubbish out: staff and residents)", response_model=Page[DropWindowPublic], responses=READ)
def list_windows(session: SessionDep, principal: CommunityResidentOrStaff, community_id: int, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT):
    items, next_cursor = service.list_windows(session, community_id, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)


@router.patch("/drop-windows/{window_id}", summary="Change or deactivate a drop-off window", response_model=DropWindowPublic, responses=WRITE)
def update_window(session: SessionDep, principal: WindowManager, window_id: int, data: DropWindowUpdate):
    return service.update_window(session, principal, window_id, data)


@router.post(
    "/communities/{community_id}/checkins",
    summary="Record one bin-side check (scan of a door-plate code)",
    status_code=201,
    response_model=ScanResult,
    responses={200: {"model": ScanResult, "description": "Duplicate: this household was already checked in this window (duplicate_of, first_result), or the same client id was sent before"}, **WRITE},
)
async def record_checkin(principal: ScanningFieldStaff, community_id: int, data: ScanIn, response: Response):
    # Requests that parse and authenticate are answered before this by app.checkins.fastpath with
    # the same service call; this route answers the rest (its errors) and documents the operation.
    response.status_code, result = await service.answer_one(principal, community_id, data)
    return result


@router.post("/communities/{community_id}/checkins/batch", summary="Upload queued offline scans (up to 1,000): a result per scan", response_model=BatchResult, responses=WRITE)
async def record_batch(principal: ScanningFieldStaff, community_id: int, data: ScanBatch):
    results = await service.record_upload(principal, community_id, data.scans)
    counts = {s: 0 for s in ScanStatus}
    for r in results:
        counts[r.status] += 1
    return BatchResult(
        accepted=counts[ScanStatus.accepted], duplicate=counts[ScanStatus.duplicate], rejected=counts[ScanStatus.rejected], results=results
    )


@router.get("/communities/{community_id}/checkins", summary="List check-ins of a community", response_model=Page[CheckInPublic], responses=READ)
def list_checkins(
    session: SessionDep,
    principal: CommunityStaff,
    community_id: int,
    household_id: int | None = None,
    status: ScanStatus | None = None,
    start: Start = None,
    end: End = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
):
    items, next_cursor = service.list_checkins(
        session, community_id, household_id=household_id, status=status, start=start, end=end, cursor=cursor, limit=limit
    )
    return Page(items=items, next_cursor=next_cursor)


@router.get("/communities/{community_id}/checkins/stats", summary="Participation and sorting accuracy over local days", response_model=CheckInStats, responses=READ)
def checkin_stats(
    session: SessionDep,
    principal: CommunityStaff,
    community_id: int,
    start: Annotated[Day | None, Query(description="起始日期（含，默认 30 天前）")] = None,
    end: Annotated[Day | None, Query(description="截止日期（含，默认今天）")] = None,
):
    return service.stats(session, community_id, start, end)


@router.get("/households/{household_id}/checkins", summary="Check-ins of a household (members and staff)", response_model=Page[CheckInPublic], responses=READ)
def household_checkins(session: SessionDep, principal: HouseholdMemberOrStaff, household_id: int, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT):
    items, next_cursor = service.household_checkins(session, household_id, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)


@router.post("/checkins/{checkin_id}/amend", summary="Re-grade a check after the resident re-sorted on the spot (二次分拣): its points follow", response_model=CheckInPublic, responses=WRITE)
def amend_checkin(session: SessionDep, principal: CheckInFieldStaff, checkin_id: int, data: AmendmentIn):
    return service.amend_checkin(session, principal, checkin_id, data)


@router.post("/checkins/{checkin_id}/reverse", summary="Correct a check-in: its points are reversed, the record stays", response_model=CheckInPublic, responses=WRITE)
def reverse_checkin(session: SessionDep, principal: CheckInCorrector, checkin_id: int, data: ReversalCreate):
    return service.reverse_checkin(session, principal, checkin_id, data.reason)
