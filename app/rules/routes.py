"""HTTP routes for a community's points rules (积分规则)."""

from __future__ import annotations

from fastapi import APIRouter

from app.core.db import SessionDep
from app.identity.auth import CommunityManager, CommunityStaff
from app.kit.errors import error_responses
from app.kit.pagination import DEFAULT_LIMIT, Cursor, Limit, Page
from app.places.auth import CommunityResidentOrStaff
from app.rules import service
from app.rules.models import PointsRuleCreate, PointsRulePublic

router = APIRouter(prefix="/api/v1", tags=["points rules"])
READ = error_responses(400, 401, 403, 404, 422)
WRITE = error_responses(400, 401, 403, 404, 409, 422)


@router.post("/communities/{community_id}/points-rules", summary="Add a version of the points rules (applies from its start time)", status_code=201, response_model=PointsRulePublic, responses=WRITE)
def create_rules(session: SessionDep, principal: CommunityManager, community_id: int, data: PointsRuleCreate):
    return service.create_rules(session, principal, community_id, data)


@router.get("/communities/{community_id}/points-rules", summary="All versions of the points rules, oldest first", response_model=Page[PointsRulePublic], responses=READ)
def list_rules(session: SessionDep, principal: CommunityStaff, community_id: int, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT):
    items, next_cursor = service.list_rules(session, community_id, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)


@router.get("/communities/{community_id}/points-rules/current", summary="The points rules in force now (what earns what: staff and the community's residents)", response_model=PointsRulePublic, responses=READ)
def current_rules(session: SessionDep, principal: CommunityResidentOrStaff, community_id: int):
    return service.current_rules(session, community_id)
