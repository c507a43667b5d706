"""HTTP routes for streets, organisations, communities, compounds, buildings and households."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlmodel import Field, SQLModel

from app.checkins import service as checkins
from app.core.db import SessionDep
from app.identity.auth import CurrentPrincipal
from app.kit.errors import error_responses
from app.kit.formats import content, file_response, formats
from app.kit.pagination import DEFAULT_LIMIT, Cursor, Limit, Page
from app.places import service
from app.places.auth import (
    BuildingManager,
    BuildingStaff,
    CommunityManager,
    CommunityResidentOrStaff,
    CommunityStaff,
    CompoundManager,
    CompoundStaff,
    HouseholdManager,
    HouseholdMemberOrManager,
    HouseholdMemberOrStaff,
    NetworkReader,
    PlatformAdmin,
    ScanningStaff,
)
from app.places.models import (
    BuildingCreate,
    BuildingPublic,
    BuildingUpdate,
    CommunityCreate,
    CommunityPublic,
    CommunityUpdate,
    CompoundCreate,
    CompoundPublic,
    CompoundUpdate,
    HouseholdCreate,
    HouseholdPublic,
    HouseholdStatus,
    HouseholdUpdate,
    NetworkCreate,
    NetworkPublic,
    OrganisationCreate,
    OrganisationPublic,
    PartnerRef,
    StreetCreate,
    StreetPublic,
)

router = APIRouter(prefix="/api/v1", tags=["places"])

READ_ERRORS = error_responses(400, 401, 403, 404, 422)  # 400: an invalid cursor
WRITE_ERRORS = error_responses(400, 401, 403, 404, 409, 422)


class ScanRequest(SQLModel):
    payload: str = Field(min_length=1, max_length=200, description="门牌二维码内容，或二维码下方印的手工输入码（大小写、空格、连字符均可）")


class OrganisationLink(SQLModel):
    community_id: int


@router.post("/streets", summary="Create a street (街道)", status_code=201, response_model=StreetPublic, responses=WRITE_ERRORS)
def create_street(session: SessionDep, principal: PlatformAdmin, data: StreetCreate):
    return service.create_street(session, principal, data)


@router.get("/streets", summary="List streets visible to me", response_model=Page[StreetPublic], responses=READ_ERRORS)
def list_streets(session: SessionDep, principal: CurrentPrincipal, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT):
    items, next_cursor = service.list_streets(session, principal, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)


@router.post("/organisations", summary="Create an organisation (社会组织)", status_code=201, response_model=OrganisationPublic, responses=WRITE_ERRORS)
def create_organisation(session: SessionDep, principal: PlatformAdmin, data: OrganisationCreate):
    return service.create_organisation(session, principal, data)


@router.post("/organisations/{organisation_id}/communities", summary="Link an organisation to a community it runs", status_code=204, responses=WRITE_ERRORS)
def link_organisation(session: SessionDep, principal: PlatformAdmin, organisation_id: int, data: OrganisationLink):
    service.link_organisation(session, principal, organisation_id, data.community_id)
    return Response(status_code=204)


@router.post("/networks", summary="Create a network of partner organisations (枢纽/联盟); a retry answers the same one",
             status_code=201, response_model=NetworkPublic, responses=WRITE_ERRORS)
def create_network(session: SessionDep, principal: PlatformAdmin, data: NetworkCreate):
    return service.create_network(session, principal, data)


@router.get("/networks/{network_id}", summary="A network and its partner organisations", response_model=NetworkPublic, responses=READ_ERRORS)
def read_network(session: SessionDep, principal: NetworkReader, network_id: int):
    return service.network_public(session, service.get_network(session, network_id))


@router.post("/networks/{network_id}/partners", summary="Add a partner organisation to a network (audited)",
             response_model=NetworkPublic, responses=WRITE_ERRORS)
def add_network_partner(session: SessionDep, principal: PlatformAdmin, network_id: int, data: PartnerRef):
    return service.add_partner(session, principal, network_id, data.organisation_id)


@router.delete("/networks/{network_id}/partners/{organisation_id}", summary="Remove a partner organisation from a network (audited)",
               response_model=NetworkPublic, responses=WRITE_ERRORS)
def remove_network_partner(session: SessionDep, principal: PlatformAdmin, network_id: int, organisation_id: int):
    return service.remove_partner(session, principal, network_id, organisation_id)


@router.post("/communities", summary="Create a community (社区)", status_code=201, response_model=CommunityPublic, responses=WRITE_ERRORS)
def create_community(session: SessionDep, principal: PlatformAdmin, data: CommunityCreate):
    return service.create_community(session, principal, data)


@router.get("/communities", summary="List communities visible to me", response_model=Page[CommunityPublic], responses=READ_ERRORS)
def list_communities(session: SessionDep, principal: CurrentPrincipal, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT):
    items, next_cursor = service.visible_communities(session, principal, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)


@router.get("/communities/{community_id}", summary="Read a community (its staff, and the residents who live there)", response_model=CommunityPublic, responses=READ_ERRORS)
def read_community(session: SessionDep, principal: CommunityResidentOrStaff, community_id: int):
    return service.read_community(session, community_id)


@router.patch("/communities/{community_id}", summary="Update a community", response_model=CommunityPublic, responses=WRITE_ERRORS)
def update_community(session: SessionDep, principal: CommunityManager, community_id: int, data: CommunityUpdate):
    return service.update_community(session, principal, community_id, data)


@router.post("/communities/{community_id}/compounds", summary="Create a compound (小区)", status_code=201, response_model=CompoundPublic, responses=WRITE_ERRORS)
def create_compound(session: SessionDep, principal: CommunityManager, community_id: int, data: CompoundCreate):
    return service.create_compound(session, principal, community_id, data)


@router.get("/communities/{community_id}/compounds", summary="List compounds of a community", response_model=Page[CompoundPublic], responses=READ_ERRORS)
def list_compounds(session: SessionDep, principal: CommunityStaff, community_id: int, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT):
    items, next_cursor = service.list_compounds(session, community_id, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)


@router.get("/compounds/{compound_id}", summary="Read a compound", response_model=CompoundPublic, responses=READ_ERRORS)
def read_compound(session: SessionDep, principal: CompoundStaff, compound_id: int):
    return service.read_compound(session, compound_id)


@router.patch("/compounds/{compound_id}", summary="Rename a compound", response_model=CompoundPublic, responses=WRITE_ERRORS)
def update_compound(session: SessionDep, principal: CompoundManager, compound_id: int, data: CompoundUpdate):
    return service.update_compound(session, principal, compound_id, data)


@router.delete("/compounds/{compound_id}", summary="Delete an empty compound", status_code=204, responses=WRITE_ERRORS)
def delete_compound(session: SessionDep, principal: CompoundManager, compound_id: int):
    service.delete_compound(session, principal, compound_id)
    return Response(status_code=204)


@router.post("/compounds/{compound_id}/buildings", summary="Create a building (楼栋)", status_code=201, response_model=BuildingPublic, responses=WRITE_ERRORS)
def create_building(session: SessionDep, principal: CompoundManager, compound_id: int, data: BuildingCreate):
    return service.create_building(session, principal, compound_id, data)


@router.get("/compounds/{compound_id}/buildings", summary="List buildings of a compound", response_model=Page[BuildingPublic], responses=READ_ERRORS)
def list_buildings(session: SessionDep, principal: CompoundStaff, compound_id: int, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT):
    items, next_cursor = service.list_buildings(session, compound_id, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)


@router.get("/buildings/{building_id}", summary="Read a building", response_model=BuildingPublic, responses=READ_ERRORS)
def read_building(session: SessionDep, principal: BuildingStaff, building_id: int):
    return service.read_building(session, building_id)


@router.patch("/buildings/{building_id}", summary="Rename a building", response_model=BuildingPublic, responses=WRITE_ERRORS)
def update_building(session: SessionDep, principal: BuildingManager, building_id: int, data: BuildingUpdate):
    return service.update_building(session, principal, building_id, data)


@router.delete("/buildings/{building_id}", summary="Delete an empty building", status_code=204, responses=WRITE_ERRORS)
def delete_building(session: SessionDep, principal: BuildingManager, building_id: int):
    service.delete_building(session, principal, building_id)
    return Response(status_code=204)


@router.post("/communities/{community_id}/households", summary="Register a household (户)", status_code=201, response_model=HouseholdPublic, responses=WRITE_ERRORS)
def create_household(session: SessionDep, principal: CommunityManager, community_id: int, data: HouseholdCreate):
    household = service.create_household(session, principal, community_id, data)
    return service.to_public(household)


@router.get("/communities/{community_id}/households", summary="List or search households by door plate", response_model=Page[HouseholdPublic], responses=READ_ERRORS)
def list_households(
    session: SessionDep,
    principal: CommunityStaff,
    community_id: int,
    q: Annotated[str | None, Query(max_length=20, description="门牌号前缀")] = None,
    building_id: int | None = None,
    status: HouseholdStatus | None = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
):
    items, next_cursor = service.list_households(
        session, community_id, q=q, building_id=building_id, status=status, cursor=cursor, limit=limit
    )
    return Page(items=items, next_cursor=next_cursor)


@router.get("/households/{household_id}", summary="Read a household", response_model=HouseholdPublic, responses=READ_ERRORS)
def read_household(session: SessionDep, principal: HouseholdMemberOrStaff, household_id: int):
    return service.read_household(session, household_id)


@router.patch("/households/{household_id}", summary="Update a household (members, status, contact phone)", response_model=HouseholdPublic, responses=WRITE_ERRORS)
def update_household(session: SessionDep, principal: HouseholdManager, household_id: int, data: HouseholdUpdate):
    return service.update_household(session, principal, household_id, data)


QrFormat = formats("QrFormat", "svg", "png")


@router.get(
    "/households/{household_id}/qr",
    summary="Door-plate QR code of a household (`format`: svg or png)",
    response_class=Response,
    responses={**content("QR code", "svg", "png"), **READ_ERRORS},
)
def household_qr(session: SessionDep, principal: HouseholdMemberOrManager, household_id: int, format: QrFormat = "svg"):
    return file_response(service.household_qr(session, household_id, format), format)


@router.post(
    "/scan/resolve",
    summary="Resolve a scanned door-plate code, or its typed hand-entry code (typed codes throttled per volunteer), to its household",
    response_model=HouseholdPublic,
    responses=error_responses(400, 401, 403, 404, 409, 422, 429),
)
def resolve_scan(session: SessionDep, principal: ScanningStaff, data: ScanRequest):
    return checkins.resolve_scan(session, principal, data.payload)
