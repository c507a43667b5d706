"""Who may call the volunteer routes: managers run the teams, field staff sign in and out of their
shifts, and those who answer for the volunteers' work read the hours."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from app.identity.auth import (
    FIELD_STAFF,
    MANAGERS,
    REPORT_READERS,
    CommunityFieldStaff,
    CommunityManager,
    CommunityRole,
    CommunityStaff,
    Place,
    Principal,
)
from app.identity.models import Role
from app.volunteers import service

__all__ = ["CommunityFieldStaff", "CommunityManager", "CommunityStaff", "HoursReader", "ShiftFieldStaff", "TeamManager"]

HOURS_READERS = REPORT_READERS | MANAGERS | {Role.supervisor}
TEAM = Place("team_id", service.get_team)
SHIFT = Place("shift_id", service.get_shift)

TeamManager = Annotated[Principal, Depends(CommunityRole(MANAGERS, at=TEAM))]
# Field staff sign out of their own shift; closing someone else's takes a supervisor or manager (service).
ShiftFieldStaff = Annotated[Principal, Depends(CommunityRole(FIELD_STAFF, at=SHIFT))]
HoursReader = Annotated[Principal, Depends(CommunityRole(HOURS_READERS))]
