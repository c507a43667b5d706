"""HTTP routes of the sorting guide: residents and staff search it; a community's managers set its own
entries and see what residents could not find."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from app.core.db import SessionDep
from app.guide import service
from app.guide.models import GuideEntry, GuideEntryIn, GuideMissPublic, GuideSearchResult, ReasonGuide
from app.identity.auth import CommunityManager
from app.kit.errors import error_responses
from app.kit.pagination import DEFAULT_LIMIT, Cursor, Limit, Page
from app.places.auth import CommunityResidentOrStaff

router = APIRouter(prefix="/api/v1", tags=["sorting guide"])
READ = error_responses(400, 401, 403, 404, 422)
WRITE = error_responses(400, 401, 403, 404, 409, 422)
ItemName = Annotated[str, Path(min_length=1, max_length=40, description="物品名称")]


@router.get(
    "/communities/{community_id}/guide",
    summary="Search the sorting guide (垃圾分类指南): by characters, pinyin or initials, typos tolerated",
    description="Answers the items the query names, best first, with their group under GB/T 19095-2019, the name the "
    "community's city uses and how to put them out; the community's own entries take the place of the guide's. "
    "A search that finds nothing is counted for the committee (`/guide/misses`).",
    response_model=GuideSearchResult,
    responses=READ,
)
def search(
    session: SessionDep,
    principal: CommunityResidentOrStaff,
    community_id: int,
    q: Annotated[str, Query(min_length=1, max_length=40, description="物品名称、拼音或首字母，如 大骨头、dagutou、dgt")],
    limit: Annotated[int, Query(ge=1, le=service.MAX_RESULTS)] = 10,
):
    items, found = service.search(session, community_id, q, limit)
    return GuideSearchResult(query=q, items=items, found=found)


@router.get("/communities/{community_id}/guide/items/{name}", summary="One item of the community's sorting guide", response_model=GuideEntry, responses=READ)
def read_entry(session: SessionDep, principal: CommunityResidentOrStaff, community_id: int, name: ItemName):
    return service.read_entry(session, community_id, name)


@router.put(
    "/communities/{community_id}/guide/items/{name}",
    summary="Set the community's own entry for an item (its bins take it elsewhere, or the guide lacks it); audited",
    response_model=GuideEntry,
    responses=WRITE,
)
def put_entry(session: SessionDep, principal: CommunityManager, community_id: int, name: ItemName, data: GuideEntryIn):
    return service.put_entry(session, principal, community_id, name, data)


@router.delete("/communities/{community_id}/guide/items/{name}", summary="Drop the community's own entry (the guide's applies again); audited", status_code=204, responses=WRITE)
def delete_entry(session: SessionDep, principal: CommunityManager, community_id: int, name: ItemName):
    service.delete_entry(session, principal, community_id, name)
    return Response(status_code=204)


@router.get("/communities/{community_id}/guide/own-items", summary="The community's own guide entries", response_model=Page[GuideEntry], responses=READ)
def community_entries(session: SessionDep, principal: CommunityResidentOrStaff, community_id: int, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT):
    items, next_cursor = service.community_entries(session, community_id, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)


@router.get(
    "/communities/{community_id}/guide/misses",
    summary="What residents searched the guide for and did not find, most asked first",
    response_model=Page[GuideMissPublic],
    responses=READ,
)
def misses(session: SessionDep, principal: CommunityManager, community_id: int, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT):
    items, next_cursor = service.misses(session, community_id, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)


@router.get(
    "/communities/{community_id}/guide/reasons",
    summary="Wrong-sorting reasons volunteers record, each with its tip and guide entries, most common here first",
    description="The reasons are a short fixed list: one page, `next_cursor` always null.",
    response_model=Page[ReasonGuide],
    responses=READ,
)
def reasons(session: SessionDep, principal: CommunityResidentOrStaff, community_id: int):
    return Page(items=service.reasons(session, community_id))
