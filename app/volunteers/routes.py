"""HTTP routes for volunteer teams, shifts (sign-in, sign-out) and hours."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.core.db import SessionDep
from app.kit.errors import error_responses
from app.kit.fields import Day
from app.kit.pagination import DEFAULT_LIMIT, Cursor, Limit, Page
from app.volunteers import service
from app.volunteers.auth import (
    CommunityFieldStaff,
    CommunityManager,
    CommunityStaff,
    HoursReader,
    ShiftFieldStaff,
    TeamManager,
)
from app.volunteers.models import (
    ShiftEnd,
    ShiftPublic,
    ShiftStart,
    TeamMemberAdd,
    VolunteerHours,
    VolunteerTeamCreate,
    VolunteerTeamPublic,
)

router = APIRouter(prefix="/api/v1", tags=["volunteers"])
READ = error_responses(400, 401, 403, 404, 422)
WRITE = error_responses(400, 401, 403, 404, 409, 422)


@router.post("/communities/{community_id}/volunteer-teams", summary="Create a volunteer team (志愿者队伍)", status_code=201, response_model=VolunteerTeamPublic, responses=WRITE)
def create_team(session: SessionDep, principal: CommunityManager, community_id: int, data: VolunteerTeamCreate):
    return service.create_team(session, principal, community_id, data)


@router.get("/communities/{community_id}/volunteer-teams", summary="Volunteer teams of a community", response_model=Page[VolunteerTeamPublic], responses=READ)
def list_teams(session: SessionDep, principal: CommunityStaff, community_id: int, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT):
    items, next_cursor = service.list_teams(session, community_id, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)


@router.post("/volunteer-teams/{team_id}/members", summary="Add a member to a team", response_model=VolunteerTeamPublic, responses=WRITE)
def add_member(session: SessionDep, principal: TeamManager, team_id: int, data: TeamMemberAdd):
    return service.add_member(session, principal, team_id, data.user_id)


@router.post(
    "/communities/{community_id}/shifts",
    summary="Sign in for a shift at a station or recycling day (签到)",
    status_code=201,
    response_model=ShiftPublic,
    responses={200: {"model": ShiftPublic, "description": "Sent before (same client id)"}, **WRITE},
)
def start_shift(session: SessionDep, principal: CommunityFieldStaff, community_id: int, data: ShiftStart, response: Response):
    shift, created = service.start_shift(session, principal, community_id, data)
    if not created:
        response.status_code = 200
    return shift


@router.post("/shifts/{shift_id}/sign-out", summary="Sign out of a shift (签退): minutes are fixed, points credited where enabled", response_model=ShiftPublic, responses=WRITE)
def end_shift(session: SessionDep, principal: ShiftFieldStaff, shift_id: int, data: ShiftEnd):
    return service.end_shift(session, principal, shift_id, data)


@router.get("/communities/{community_id}/shifts", summary="Shifts of a community", response_model=Page[ShiftPublic], responses=READ)
def list_shifts(
    session: SessionDep,
    principal: CommunityStaff,
    community_id: int,
    user_id: int | None = None,
    open_only: bool = False,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
):
    items, next_cursor = service.list_shifts(session, community_id, user_id=user_id, open_only=open_only, cursor=cursor, limit=limit)
    return Page(items=items, next_cursor=next_cursor)


@router.get("/communities/{community_id}/volunteer-hours", summary="Volunteer hours (志愿时长) per volunteer over a period", response_model=Page[VolunteerHours], responses=READ)
def hours(
    session: SessionDep,
    principal: HoursReader,
    community_id: int,
    start: Annotated[Day | None, Query(description="起始日期（含，默认本月一日）")] = None,
    end: Annotated[Day | None, Query(description="截止日期（含，默认今天）")] = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
):
    items, next_cursor = service.hours(session, community_id, start, end, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)
