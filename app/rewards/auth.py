"""Who may call the rewards routes: residents browse the catalogue of their community and act for
their own household; the clerks of the exchange point (兑换点) hand rewards over; managers keep the
catalogue."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from app.identity.auth import (
    MANAGERS,
    STAFF_READ,
    CommunityManager,
    CommunityRole,
    HouseholdMember,
    Place,
    Principal,
)
from app.identity.models import Role
from app.places.auth import HOUSEHOLD, HouseholdManager
from app.rewards import pins, service

__all__ = [
    "CatalogueReader", "CommunityClerk", "CommunityManager", "HouseholdManager", "HouseholdMemberOrClerk",
    "HouseholdResident", "ItemManager", "ItemReader", "PinResetConfirmer", "RedemptionClerk", "RedemptionMemberOrClerk",
]

# Who works the exchange point: fulfil, cancel, spend at the counter, see open holds.
CLERKS = frozenset({Role.clerk, Role.committee, Role.org_admin})
ITEM = Place("item_id", service.get_item)
REDEMPTION = Place("redemption_id", service.get_redemption, household=lambda r: r.household_id)
PIN_RESET = Place("pin_reset_id", pins.get_reset)

# The catalogue: staff, and residents of an active household of the community.
CatalogueReader = Annotated[Principal, Depends(CommunityRole(STAFF_READ, residents=service.is_resident_of))]
ItemReader = Annotated[Principal, Depends(CommunityRole(STAFF_READ, at=ITEM, residents=service.is_resident_of))]
ItemManager = Annotated[Principal, Depends(CommunityRole(MANAGERS, at=ITEM))]
# Reserving, consent codes and the PIN spend the household's points: its members themselves, nobody
# for them. Managers reset a PIN (HouseholdManager) for the resident to confirm: with their consent
# code, or in person before a second staff member of the exchange point (PinResetConfirmer).
HouseholdResident = Annotated[Principal, Depends(HouseholdMember())]
HouseholdMemberOrClerk = Annotated[Principal, Depends(CommunityRole(CLERKS, at=HOUSEHOLD, members=True))]
CommunityClerk = Annotated[Principal, Depends(CommunityRole(CLERKS))]  # CLERKS include the managers
RedemptionClerk = Annotated[Principal, Depends(CommunityRole(CLERKS, at=REDEMPTION))]
RedemptionMemberOrClerk = Annotated[Principal, Depends(CommunityRole(CLERKS, at=REDEMPTION, members=True))]
PinResetConfirmer = Annotated[Principal, Depends(CommunityRole(CLERKS, at=PIN_RESET))]
