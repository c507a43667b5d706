"""Who may call the places routes: platform admins build the map; a community's staff read it and
its managers change it; a household's members see their own household."""

from __future__ import annotations

from operator import attrgetter
from typing import Annotated

from fastapi import Depends

from app.identity.auth import (
    FIELD_STAFF,
    MANAGERS,
    STAFF_READ,
    CommunityManager,
    CommunityRole,
    CommunityStaff,
    Place,
    PlatformAdmin,
    Principal,
    RoleAnywhere,
)
from app.places import service

__all__ = [
    "BuildingManager", "BuildingStaff", "CommunityManager", "CommunityResidentOrStaff", "CommunityStaff",
    "CompoundManager", "CompoundStaff", "HouseholdManager", "HouseholdMemberOrManager", "HouseholdMemberOrStaff",
    "PlatformAdmin", "ScanningStaff",
]

COMPOUND = Place("compound_id", service.get_compound)
BUILDING = Place("building_id", service.get_building)
# Other domains locate their household routes with this one.
HOUSEHOLD = Place("household_id", service.get_household, household=attrgetter("id"))

CompoundStaff = Annotated[Principal, Depends(CommunityRole(STAFF_READ, at=COMPOUND))]
CompoundManager = Annotated[Principal, Depends(CommunityRole(MANAGERS, at=COMPOUND))]
BuildingStaff = Annotated[Principal, Depends(CommunityRole(STAFF_READ, at=BUILDING))]
BuildingManager = Annotated[Principal, Depends(CommunityRole(MANAGERS, at=BUILDING))]
HouseholdManager = Annotated[Principal, Depends(CommunityRole(MANAGERS, at=HOUSEHOLD))]
HouseholdMemberOrStaff = Annotated[Principal, Depends(CommunityRole(STAFF_READ, at=HOUSEHOLD, members=True))]
# Its members, or managers acting in person: printing its door-plate QR code.
HouseholdMemberOrManager = Annotated[Principal, Depends(CommunityRole(MANAGERS, at=HOUSEHOLD, members=True))]
# The community's staff, and the residents who live there.
CommunityResidentOrStaff = Annotated[Principal, Depends(CommunityRole(STAFF_READ, residents=service.lives_in))]
# Field staff resolving a scanned door plate; the service checks the household's community.
ScanningStaff = Annotated[Principal, Depends(RoleAnywhere(FIELD_STAFF))]
