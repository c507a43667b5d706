"""Handover endpoints: thin, one service call each."""

from __future__ import annotations

from fastapi import APIRouter

from app.core.db import SessionDep
from app.handover import service
from app.handover.models import HandoverRequest, HandoverResult
from app.identity.auth import PlatformAdmin
from app.kit.errors import error_responses

router = APIRouter(prefix="/api/v1", tags=["handover"])
WRITE_ERRORS = error_responses(400, 401, 403, 404, 409, 422)


@router.post(
    "/organisations/{organisation_id}/handover",
    summary="Hand an organisation's communities, admins and reports over to another organisation or the street office (交接)",
    description="One audited step. Sent again, it hands over nothing more (the answer lists no community).",
    response_model=HandoverResult,
    responses=WRITE_ERRORS,
)
def hand_over(session: SessionDep, principal: PlatformAdmin, organisation_id: int, data: HandoverRequest):
    return service.hand_over(session, principal, organisation_id, data)
