"""Catalogue, reservations, fulfilment at the exchange point, counter spending, consent codes, PINs and their resets."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.core.db import SessionDep
from app.kit.errors import error_responses
from app.kit.pagination import DEFAULT_LIMIT, Cursor, Limit, Page
from app.rewards import flows, service
from app.rewards.auth import (
    CatalogueReader,
    CommunityClerk,
    CommunityManager,
    HouseholdManager,
    HouseholdMemberOrClerk,
    HouseholdResident,
    ItemManager,
    ItemReader,
    PinResetConfirmer,
    RedemptionClerk,
    RedemptionMemberOrClerk,
)
from app.rewards.models import (
    CancelRequest,
    ConsentCode,
    CounterRequest,
    CounterResult,
    FulfilRequest,
    LapseRunResult,
    PinResetPublic,
    PinResetRequest,
    PinSet,
    RedemptionPublic,
    RedemptionStatus,
    ReserveRequest,
    RewardItemCreate,
    RewardItemPublic,
    RewardItemUpdate,
)

router = APIRouter(prefix="/api/v1", tags=["rewards"])
READ = error_responses(400, 401, 403, 404, 422)
WRITE = error_responses(400, 401, 403, 404, 409, 422)
CONSENTED = error_responses(400, 401, 403, 404, 409, 422, 429)


# --- catalogue ---------------------------------------------------------------------------------

@router.post("/communities/{community_id}/rewards", summary="Add an item to the community's rewards catalogue", status_code=201, response_model=RewardItemPublic, responses=WRITE)
def create_item(session: SessionDep, principal: CommunityManager, community_id: int, data: RewardItemCreate):
    return service.create_item(session, principal, community_id, data)


@router.get("/communities/{community_id}/rewards", summary="Rewards available now (all items, with include_unavailable, for managers)", response_model=Page[RewardItemPublic], responses=READ)
def list_items(
    session: SessionDep,
    principal: CatalogueReader,
    community_id: int,
    include_unavailable: bool = False,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
):
    items, next_cursor = service.list_items(session, principal, community_id, include_unavailable, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)


@router.get("/rewards/{item_id}", summary="One rewards catalogue item", response_model=RewardItemPublic, responses=READ)
def read_item(session: SessionDep, principal: ItemReader, item_id: int):
    return service.read_item(session, item_id)


@router.patch("/rewards/{item_id}", summary="Change a catalogue item (price, stock, limit, dates, picture)", response_model=RewardItemPublic, responses=WRITE)
def update_item(session: SessionDep, principal: ItemManager, item_id: int, data: RewardItemUpdate):
    return service.update_item(session, principal, item_id, data)


@router.delete("/rewards/{item_id}", summary="Withdraw an item from the catalogue", status_code=204, responses=WRITE)
def withdraw_item(session: SessionDep, principal: ItemManager, item_id: int):
    service.withdraw_item(session, principal, item_id)
    return Response(status_code=204)


# --- resident ----------------------------------------------------------------------------------

@router.post("/households/{household_id}/redemptions", summary="Reserve a reward: points and stock are held until collected", status_code=201, response_model=RedemptionPublic, responses=WRITE)
def reserve(session: SessionDep, principal: HouseholdResident, household_id: int, data: ReserveRequest):
    return flows.reserve(session, principal, household_id, data)


@router.get("/households/{household_id}/redemptions", summary="A household's redemptions", response_model=Page[RedemptionPublic], responses=READ)
def household_redemptions(
    session: SessionDep,
    principal: HouseholdMemberOrClerk,
    household_id: int,
    status: RedemptionStatus | None = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
):
    items, next_cursor = flows.household_redemptions(session, household_id, status, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)


@router.post("/households/{household_id}/consent-codes", summary="A single-use consent code (about 60 s) to show the clerk", status_code=201, response_model=ConsentCode, responses=WRITE)
def consent_code(session: SessionDep, principal: HouseholdResident, household_id: int):
    return flows.new_consent_code(session, household_id)


@router.put("/households/{household_id}/pin", summary="Set the household's redemption PIN (6 digits; the resident only)", status_code=204, responses=WRITE)
def set_pin(session: SessionDep, principal: HouseholdResident, household_id: int, data: PinSet):
    flows.set_pin(session, principal, household_id, data)
    return Response(status_code=204)


@router.post("/households/{household_id}/pin-resets", summary="Reset a household's PIN for the resident: applied with their consent code, else once a second staff member confirms", status_code=201, response_model=PinResetPublic, responses=CONSENTED)
def reset_pin(session: SessionDep, principal: HouseholdManager, household_id: int, data: PinResetRequest):
    return flows.reset_pin(session, principal, household_id, data)


@router.post("/pin-resets/{pin_reset_id}/confirm", summary="A second staff member confirms a PIN reset in the resident's presence", response_model=PinResetPublic, responses=WRITE)
def confirm_pin_reset(session: SessionDep, principal: PinResetConfirmer, pin_reset_id: int):
    return flows.confirm_pin_reset(session, principal, pin_reset_id)


# --- exchange point ----------------------------------------------------------------------------

@router.get("/communities/{community_id}/redemptions", summary="Redemptions in a community (e.g. status=held at the exchange point)", response_model=Page[RedemptionPublic], responses=READ)
def community_redemptions(
    session: SessionDep,
    principal: CommunityClerk,
    community_id: int,
    status: RedemptionStatus | None = None,
    household_id: int | None = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
):
    items, next_cursor = flows.community_redemptions(session, community_id, status, household_id, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)


@router.get("/redemptions/{redemption_id}", summary="One redemption", response_model=RedemptionPublic, responses=READ)
def read_redemption(session: SessionDep, principal: RedemptionMemberOrClerk, redemption_id: int):
    return flows.read_redemption(session, redemption_id)


@router.post("/redemptions/{redemption_id}/fulfil", summary="Hand over a reserved reward, with the resident's code or PIN", response_model=RedemptionPublic, responses=CONSENTED)
def fulfil(session: SessionDep, principal: RedemptionClerk, redemption_id: int, data: FulfilRequest):
    return flows.fulfil(session, principal, redemption_id, data)


@router.post("/redemptions/{redemption_id}/cancel", summary="Cancel a reservation: points and stock are released", response_model=RedemptionPublic, responses=WRITE)
def cancel(session: SessionDep, principal: RedemptionMemberOrClerk, redemption_id: int, data: CancelRequest | None = None):
    return flows.cancel(session, principal, redemption_id, data.reason if data else None)


@router.post("/communities/{community_id}/counter-redemptions", summary="Spend at the counter: reserve and hand over at once, with the resident's consent", status_code=201, response_model=CounterResult, responses=CONSENTED)
def counter_spend(session: SessionDep, principal: CommunityClerk, community_id: int, data: CounterRequest):
    return flows.counter_spend(session, principal, community_id, data)


@router.post("/communities/{community_id}/redemptions/lapse-runs", summary="Release reservations not collected in time (idempotent)", response_model=LapseRunResult, responses=WRITE)
def lapse(session: SessionDep, principal: CommunityClerk, community_id: int):
    return flows.run_lapse(session, principal, community_id)
