"""HTTP routes for door-plate label sheets (PDF)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlmodel import Field, SQLModel

from app.core.db import SessionDep
from app.identity.auth import CommunityManager
from app.kit.errors import error_responses
from app.kit.formats import content, file_response, formats
from app.labels import service
from app.labels.service import MAX_LABELS, LabelLayout
from app.places.auth import BuildingManager

router = APIRouter(prefix="/api/v1", tags=["labels"])

PDF_RESPONSE = content("A4 PDF of door-plate labels", "pdf")
LabelFormat = formats("LabelFormat", "pdf")
LayoutQuery = Annotated[LabelLayout, Query(description="sheet: 3×4 labels of 60 mm per A4 page; single: one label per page")]


class LabelRequest(SQLModel):
    household_ids: list[int] = Field(min_length=1, max_length=MAX_LABELS, description="要打印门牌码的住户")
    layout: LabelLayout = LabelLayout.sheet


def _pdf(body: bytes, filename: str) -> Response:
    return file_response(body, "pdf", filename, attachment=False)


@router.get(
    "/buildings/{building_id}/labels",
    summary="Door-plate QR labels of every household in a building (A4 PDF)",
    response_class=Response,
    responses={**PDF_RESPONSE, **error_responses(401, 403, 404, 422)},
)
def building_labels(
    session: SessionDep, principal: BuildingManager, building_id: int, layout: LayoutQuery = LabelLayout.sheet, format: LabelFormat = "pdf"
):
    return _pdf(*service.building_labels(session, principal, building_id, layout))


@router.post(
    "/communities/{community_id}/labels",
    summary="Door-plate QR labels of chosen households (A4 PDF)",
    response_class=Response,
    responses={**PDF_RESPONSE, **error_responses(401, 403, 404, 422)},
)
def household_labels(session: SessionDep, principal: CommunityManager, community_id: int, data: LabelRequest):
    return _pdf(*service.household_labels(session, principal, community_id, data.household_ids, data.layout))
