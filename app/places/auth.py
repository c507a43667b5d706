"""Who may call the places routes: platform admins build the map; a community's staff read it and
its managers change it; a household's members see their own household."""

from __future__ import annotations

from operator import attrgetter
from typing import Annotated

from fastapi import Depends, Path
from sqlmodel import Session

from app.core.db import SessionDep
from app.identity.auth import (
    FIELD_STAFF,
    MANAGERS,
    STAFF_READ,
    CommunityManager,
    CommunityRole,
    CommunityStaff,
    CurrentPrincipal,
    Permission,
    Place,
    PlatformAdmin,
    Principal,
    RoleAnywhere,
    permission_signature,
)
from app.identity.models import Role
from app.kit.errors import Forbidden
from app.places import service

__all__ = [
    "BuildingManager", "BuildingStaff", "CommunityManager", "CommunityResidentOrStaff", "CommunityStaff",
    "CompoundManager", "CompoundStaff", "HouseholdManager", "HouseholdMemberOrManager", "HouseholdMemberOrStaff",
    "NetworkReader", "PlatformAdmin", "ScanningStaff",
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


class NetworkCoordinator(Permission):
    """Platform admins, and the admins of the network's coordinating organisation (秘书处/枢纽机构).
    A network that does not exist is a 404 for everyone, before any role is looked at."""

    roles = frozenset({Role.org_admin})
    __signature__ = permission_signature(session=SessionDep, principal=CurrentPrincipal, network_id=Annotated[int, Path()])

    def __call__(self, session: Session, principal: Principal, network_id: int) -> Principal:
        network = service.get_network(session, network_id)
        coordinator = network.coordinator_organisation_id
        if principal.is_platform_admin or (coordinator is not None and any(
            g.role == Role.org_admin and g.organisation_id == coordinator for g in principal.grants
        )):
            return principal
        raise Forbidden("forbidden", "无权查看该网络", "You are not allowed to read this network")


# The network's coordinators read it and its reports; platform admins also manage its partners.
NetworkReader = Annotated[Principal, Depends(NetworkCoordinator())]
