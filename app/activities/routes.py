"""HTTP routes for activities (reports) and challenges (打卡挑战)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlmodel import Field, SQLModel

from app.activities import service
from app.activities.auth import (
    ActivityManager,
    ActivityStaff,
    ChallengeParticipant,
    ChallengeStaff,
    CommunityManager,
    CommunityReportReader,
    CommunityResidentOrStaff,
    CommunityStaff,
    HouseholdMemberOrStaff,
)
from app.activities.models import (
    ActivityCreate,
    ActivityPublic,
    ActivityTotals,
    ActivityUpdate,
    Attendees,
    AttendeesAdd,
    ChallengeCreate,
    ChallengePublic,
    ChallengeStats,
    EnrolmentPublic,
    HouseholdRef,
)
from app.core.db import SessionDep
from app.kit.errors import error_responses
from app.kit.fields import Day
from app.kit.pagination import DEFAULT_LIMIT, Cursor, Limit, Page

router = APIRouter(prefix="/api/v1", tags=["activities and challenges"])
READ = error_responses(400, 401, 403, 404, 422)
WRITE = error_responses(400, 401, 403, 404, 409, 422)


class ChallengeCheckIn(SQLModel):
    household_id: int
    day: Day | None = Field(default=None, description="工作人员代录时的日期（最近 3 天内）；居民本人打卡不填")


@router.post("/communities/{community_id}/activities", summary="Record an activity for reports (活动)", status_code=201, response_model=ActivityPublic, responses=WRITE)
def create_activity(session: SessionDep, principal: CommunityManager, community_id: int, data: ActivityCreate):
    return service.create_activity(session, principal, community_id, data)


@router.get("/communities/{community_id}/activities", summary="Activities of a community", response_model=Page[ActivityPublic], responses=READ)
def list_activities(
    session: SessionDep,
    principal: CommunityStaff,
    community_id: int,
    start: date | None = None,
    end: date | None = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
):
    items, next_cursor = service.list_activities(session, community_id, start, end, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)


@router.get("/communities/{community_id}/activities/totals", summary="Activity totals for a period (人次 and 人 apart)", response_model=ActivityTotals, responses=READ)
def activity_totals(
    session: SessionDep,
    principal: CommunityReportReader,
    community_id: int,
    start: Annotated[Day | None, Query(description="起始日期（含，默认本月一日）")] = None,
    end: Annotated[Day | None, Query(description="截止日期（含，默认今天）")] = None,
):
    return service.totals(session, community_id, start, end)


@router.get("/activities/{activity_id}", summary="Read an activity", response_model=ActivityPublic, responses=READ)
def read_activity(session: SessionDep, principal: ActivityStaff, activity_id: int):
    return service.read_activity(session, activity_id)


@router.patch("/activities/{activity_id}", summary="Correct an activity record", response_model=ActivityPublic, responses=WRITE)
def update_activity(session: SessionDep, principal: ActivityManager, activity_id: int, data: ActivityUpdate):
    return service.update_activity(session, principal, activity_id, data)


@router.get("/activities/{activity_id}/attendees", summary="The households named among an activity's participants (人), and how many are not",
            response_model=Attendees, responses=READ)
def list_attendees(session: SessionDep, principal: ActivityStaff, activity_id: int):
    return service.attendees(session, activity_id)


@router.post("/activities/{activity_id}/attendees", summary="Name households that took part in an activity (idempotent; audited)",
             response_model=Attendees, responses=WRITE)
def add_attendees(session: SessionDep, principal: ActivityManager, activity_id: int, data: AttendeesAdd):
    return service.add_attendees(session, principal, activity_id, data.household_ids, data.backdate_reason)


@router.delete("/activities/{activity_id}/attendees/{household_id}", summary="Take a household off an activity's attendees (audited)",
               response_model=Attendees, responses=WRITE)
def remove_attendee(session: SessionDep, principal: ActivityManager, activity_id: int, household_id: int,
                    backdate_reason: Annotated[str | None, Query(min_length=4, max_length=200,
                                                                 description="补录原因（居委会）：活动日期早于 3 天前时须填写")] = None):
    return service.remove_attendee(session, principal, activity_id, household_id, backdate_reason)


@router.post("/communities/{community_id}/challenges", summary="Create a check-in challenge (打卡挑战)", status_code=201, response_model=ChallengePublic, responses=WRITE)
def create_challenge(session: SessionDep, principal: CommunityManager, community_id: int, data: ChallengeCreate):
    return service.create_challenge(session, principal, community_id, data)


@router.get("/communities/{community_id}/challenges", summary="Challenges of a community (residents and staff)", response_model=Page[ChallengePublic], responses=READ)
def list_challenges(session: SessionDep, principal: CommunityResidentOrStaff, community_id: int, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT):
    items, next_cursor = service.list_challenges(session, community_id, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)


@router.post(
    "/challenges/{challenge_id}/enrolments",
    summary="Join a challenge with my household",
    status_code=201,
    response_model=EnrolmentPublic,
    responses={200: {"model": EnrolmentPublic, "description": "Already joined"}, **WRITE},
)
def join(session: SessionDep, principal: ChallengeParticipant, challenge_id: int, data: HouseholdRef, response: Response):
    enrolment, created = service.join(session, principal, challenge_id, data.household_id)
    if not created:
        response.status_code = 200
    return enrolment


@router.post("/challenges/{challenge_id}/checkins", summary="Check in today (打卡): streak, completion, points", response_model=EnrolmentPublic, responses=WRITE)
def challenge_check_in(session: SessionDep, principal: ChallengeParticipant, challenge_id: int, data: ChallengeCheckIn):
    return service.check_in(session, principal, challenge_id, data.household_id, data.day)


@router.get("/challenges/{challenge_id}/stats", summary="How many joined, are on a streak, completed", response_model=ChallengeStats, responses=READ)
def challenge_stats(session: SessionDep, principal: ChallengeStaff, challenge_id: int):
    return service.stats(session, challenge_id)


@router.get("/households/{household_id}/challenges", summary="A household's challenges and streaks", response_model=Page[EnrolmentPublic], responses=READ)
def household_challenges(session: SessionDep, principal: HouseholdMemberOrStaff, household_id: int, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT):
    items, next_cursor = service.household_enrolments(session, household_id, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)
