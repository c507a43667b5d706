"""Who may call the compost routes: a community's compost keepers (堆肥管理员) and managers run its
sites and bins (open, close, harvest, readings); its staff read them; its field staff record drops
and hand the compost over; keepers and supervisors correct a drop; a household's members see their
own compost claims."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from sqlmodel import Session

from app.compost import service
from app.compost.models import CompostHarvest
from app.identity.auth import (
    FIELD_STAFF,
    MANAGERS,
    STAFF_READ,
    CommunityRole,
    CommunityStaff,
    Place,
    Principal,
)
from app.identity.models import Role
from app.places import service as places
from app.places.auth import CommunityResidentOrStaff, HouseholdMemberOrStaff

__all__ = [
    "BinFieldStaff", "BinKeeper", "BinResidentOrStaff", "BinStaff", "ClaimFieldStaff", "CommunityKeeper",
    "CommunityResidentOrStaff", "CommunityStaff",
    "DropCorrector", "HouseholdMemberOrStaff", "SiteKeeper",
]

KEEPERS = MANAGERS | {Role.compost_keeper}
DROP_CORRECTORS = KEEPERS | {Role.supervisor}


def _claim_harvest(session: Session, claim_id: int) -> CompostHarvest:
    """The harvest a claim shares out (a claim belongs to its harvest's community); the claim's 404 first."""
    return service.get_harvest(session, service.get_claim(session, claim_id).harvest_id)


SITE = Place("site_id", service.get_site)
BIN = Place("bin_id", service.get_bin)
DROP = Place("drop_id", service.get_drop)
CLAIM = Place("claim_id", _claim_harvest)

CommunityKeeper = Annotated[Principal, Depends(CommunityRole(KEEPERS))]
SiteKeeper = Annotated[Principal, Depends(CommunityRole(KEEPERS, at=SITE))]
BinStaff = Annotated[Principal, Depends(CommunityRole(STAFF_READ, at=BIN))]
# A bin's state (accepting, curing, ready to collect) is on the notice board: its community's residents read it.
BinResidentOrStaff = Annotated[Principal, Depends(CommunityRole(STAFF_READ, at=BIN, residents=places.lives_in))]
BinKeeper = Annotated[Principal, Depends(CommunityRole(KEEPERS, at=BIN))]
BinFieldStaff = Annotated[Principal, Depends(CommunityRole(FIELD_STAFF, at=BIN))]
DropCorrector = Annotated[Principal, Depends(CommunityRole(DROP_CORRECTORS, at=DROP))]
ClaimFieldStaff = Annotated[Principal, Depends(CommunityRole(FIELD_STAFF, at=CLAIM))]
