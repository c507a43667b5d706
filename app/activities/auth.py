"""Who may call the activities and challenges routes: managers record activities and set challenges;
residents of the community join and check in for their own household, field staff for any of it."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from app.activities import service
from app.identity.auth import (
    FIELD_STAFF,
    MANAGERS,
    STAFF_READ,
    CommunityManager,
    CommunityReportReader,
    CommunityRole,
    CommunityStaff,
    Place,
    Principal,
)
from app.places.auth import CommunityResidentOrStaff, HouseholdMemberOrStaff
from app.places.service import lives_in

__all__ = [
    "ActivityManager", "ActivityStaff", "ChallengeParticipant", "ChallengeStaff", "CommunityManager",
    "CommunityReportReader", "CommunityResidentOrStaff", "CommunityStaff", "HouseholdMemberOrStaff",
]

ACTIVITY = Place("activity_id", service.get_activity)
CHALLENGE = Place("challenge_id", service.get_challenge)

ActivityStaff = Annotated[Principal, Depends(CommunityRole(STAFF_READ, at=ACTIVITY))]
ActivityManager = Annotated[Principal, Depends(CommunityRole(MANAGERS, at=ACTIVITY))]
ChallengeStaff = Annotated[Principal, Depends(CommunityRole(STAFF_READ, at=CHALLENGE))]
# Residents of the challenge's community (for their own household: the service checks the one sent)
# and field staff (for any household of the community).
ChallengeParticipant = Annotated[Principal, Depends(CommunityRole(FIELD_STAFF, at=CHALLENGE, residents=lives_in))]
