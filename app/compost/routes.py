"""HTTP routes for compost sites, bins, drops, readings, harvests and claims."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.compost import service
from app.compost.auth import (
    BinFieldStaff,
    BinKeeper,
    BinResidentOrStaff,
    BinStaff,
    ClaimFieldStaff,
    CommunityKeeper,
    CommunityResidentOrStaff,
    DropCorrector,
    HouseholdMemberOrStaff,
    SiteKeeper,
)
from app.compost.models import (
    CompostBinCreate,
    CompostBinPublic,
    CompostClaimPublic,
    CompostDropCreate,
    CompostDropPublic,
    CompostReadingCreate,
    CompostReadingPublic,
    CompostSiteCreate,
    CompostSitePublic,
    HarvestCreate,
    HarvestPublic,
)
from app.core.db import SessionDep
from app.kit.errors import error_responses
from app.kit.pagination import DEFAULT_LIMIT, Cursor, Limit, Page
from app.rules.models import ReversalCreate

router = APIRouter(prefix="/api/v1", tags=["compost"])
READ = error_responses(400, 401, 403, 404, 422)
WRITE = error_responses(400, 401, 403, 404, 409, 422)


@router.post("/communities/{community_id}/compost-sites", summary="Create a compost site (堆肥点)", status_code=201, response_model=CompostSitePublic, responses=WRITE)
def create_site(session: SessionDep, principal: CommunityKeeper, community_id: int, data: CompostSiteCreate):
    return service.create_site(session, principal, community_id, data)


@router.get("/communities/{community_id}/compost-sites", summary="List compost sites", response_model=Page[CompostSitePublic], responses=READ)
def list_sites(session: SessionDep, principal: CommunityResidentOrStaff, community_id: int, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT):
    items, next_cursor = service.list_sites(session, community_id, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)


@router.post("/compost-sites/{site_id}/bins", summary="Add a compost bin (堆肥箱) to a site", status_code=201, response_model=CompostBinPublic, responses=WRITE)
def create_bin(session: SessionDep, principal: SiteKeeper, site_id: int, data: CompostBinCreate):
    return service.create_bin(session, principal, site_id, data)


@router.get("/communities/{community_id}/compost-bins", summary="List compost bins with their state", response_model=Page[CompostBinPublic], responses=READ)
def list_bins(session: SessionDep, principal: CommunityResidentOrStaff, community_id: int, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT):
    items, next_cursor = service.list_bins(session, community_id, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)


@router.get("/compost-bins/{bin_id}", summary="Read a compost bin", response_model=CompostBinPublic, responses=READ)
def read_bin(session: SessionDep, principal: BinResidentOrStaff, bin_id: int):
    return service.read_bin(session, bin_id)


@router.post("/compost-bins/{bin_id}/close", summary="Close a full bin: it starts curing", response_model=CompostBinPublic, responses=WRITE)
def close_bin(session: SessionDep, principal: BinKeeper, bin_id: int):
    return service.close_bin(session, principal, bin_id)


@router.post("/compost-bins/{bin_id}/ready", summary="Mark a curing bin ready", response_model=CompostBinPublic, responses=WRITE)
def mark_ready(session: SessionDep, principal: BinKeeper, bin_id: int):
    return service.mark_ready(session, principal, bin_id)


@router.post("/compost-bins/{bin_id}/harvest", summary="Open a ready bin (开箱): share its compost among contributing households", status_code=201, response_model=HarvestPublic, responses=WRITE)
def harvest(session: SessionDep, principal: BinKeeper, bin_id: int, data: HarvestCreate):
    return service.harvest(session, principal, bin_id, data.compost_g)


@router.get("/compost-bins/{bin_id}/harvests", summary="Harvests of a bin with their claims", response_model=Page[HarvestPublic], responses=READ)
def list_harvests(session: SessionDep, principal: BinStaff, bin_id: int, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT):
    items, next_cursor = service.list_harvests(session, bin_id, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)


@router.post("/compost-bins/{bin_id}/reopen", summary="Start a new cycle in a harvested bin", response_model=CompostBinPublic, responses=WRITE)
def reopen_bin(session: SessionDep, principal: BinKeeper, bin_id: int):
    return service.reopen_bin(session, principal, bin_id)


@router.post(
    "/compost-bins/{bin_id}/drops",
    summary="Record a household's kitchen waste into a bin (earns points)",
    status_code=201,
    response_model=CompostDropPublic,
    responses={200: {"model": CompostDropPublic, "description": "Sent before (same client id): the drop as recorded then"}, **WRITE},
)
def record_drop(session: SessionDep, principal: BinFieldStaff, bin_id: int, data: CompostDropCreate, response: Response):
    drop, created = service.record_drop(session, principal, bin_id, data)
    if not created:
        response.status_code = 200
    return drop


@router.get("/compost-bins/{bin_id}/drops", summary="Drops into a bin", response_model=Page[CompostDropPublic], responses=READ)
def list_drops(session: SessionDep, principal: BinStaff, bin_id: int, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT):
    items, next_cursor = service.list_drops(session, bin_id, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)


@router.post("/compost-drops/{drop_id}/reverse", summary="Correct a drop: its points are reversed, the record stays", response_model=CompostDropPublic, responses=WRITE)
def reverse_drop(session: SessionDep, principal: DropCorrector, drop_id: int, data: ReversalCreate):
    return service.reverse_drop(session, principal, drop_id, data.reason)


@router.post("/compost-bins/{bin_id}/readings", summary="Record a keeper's reading (temperature, moisture, smell)", status_code=201, response_model=CompostReadingPublic, responses=WRITE)
def add_reading(session: SessionDep, principal: BinKeeper, bin_id: int, data: CompostReadingCreate):
    return service.add_reading(session, principal, bin_id, data)


@router.get("/compost-bins/{bin_id}/readings", summary="Readings of a bin", response_model=Page[CompostReadingPublic], responses=READ)
def list_readings(session: SessionDep, principal: BinStaff, bin_id: int, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT):
    items, next_cursor = service.list_readings(session, bin_id, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)


@router.post("/compost-claims/{claim_id}/collect", summary="Hand a household its share of compost (领取肥料, once)", response_model=CompostClaimPublic, responses=WRITE)
def collect_claim(session: SessionDep, principal: ClaimFieldStaff, claim_id: int):
    return service.collect_claim(session, principal, claim_id)


@router.get("/households/{household_id}/compost-claims", summary="Compost a household may collect or has collected", response_model=Page[CompostClaimPublic], responses=READ)
def household_claims(session: SessionDep, principal: HouseholdMemberOrStaff, household_id: int, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT):
    items, next_cursor = service.household_claims(session, household_id, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)
