"""Who may call the check-in routes: a community's managers set up its stations and windows, its staff
read them and its check-ins, its field staff scan and re-grade, managers and supervisors correct."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from app.checkins import service
from app.core.db import get_engine
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
    Principal,
    authorize,
    permission_signature,
)
from app.identity.models import Role
from app.places.auth import HOUSEHOLD

__all__ = [
    "CheckInCorrector", "CheckInFieldStaff", "CommunityManager", "CommunityStaff", "HouseholdMemberOrStaff",
    "ScanningFieldStaff", "StationManager", "WindowManager",
]

CORRECTORS = MANAGERS | {Role.supervisor}
STATION = Place("station_id", service.get_station)
WINDOW = Place("window_id", service.get_window)
CHECKIN = Place("checkin_id", service.get_checkin)


async def may_scan(principal: Principal, community_id: int) -> None:
    """Field staff of the community, or refused (403). Read off the token for a community's own roles;
    an organisation's or a street's is checked against the community's links in a worker thread. The
    scan route's permission and its lean twin (app.checkins.fastpath) both ask here."""
    if principal.is_platform_admin or principal.community_grants(community_id) & FIELD_STAFF:
        return

    def check() -> None:
        with Session(get_engine()) as session:
            authorize(session, principal, community_id, FIELD_STAFF)

    await run_in_threadpool(check)


class Scanning(Permission):
    """Field staff of the `community_id` in the path, on the event loop (the bin-side scan takes no
    session: no thread hop for a community's own roles)."""

    roles = FIELD_STAFF
    __signature__ = permission_signature(principal=CurrentPrincipal, community_id=Annotated[int, Path()])

    async def __call__(self, principal: Principal, community_id: int) -> Principal:
        await may_scan(principal, community_id)
        return principal


ScanningFieldStaff = Annotated[Principal, Depends(Scanning())]
StationManager = Annotated[Principal, Depends(CommunityRole(MANAGERS, at=STATION))]
WindowManager = Annotated[Principal, Depends(CommunityRole(MANAGERS, at=WINDOW))]
CheckInFieldStaff = Annotated[Principal, Depends(CommunityRole(FIELD_STAFF, at=CHECKIN))]
CheckInCorrector = Annotated[Principal, Depends(CommunityRole(CORRECTORS, at=CHECKIN))]
HouseholdMemberOrStaff = Annotated[Principal, Depends(CommunityRole(STAFF_READ, at=HOUSEHOLD, members=True))]
