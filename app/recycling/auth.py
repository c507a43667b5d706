"""Who may call the recycling-day routes: a community's managers organise its days (rates, schedules,
events, what an event takes); its staff read them, and so do the residents living there (recycling
days are for them); its field staff weigh in; managers and clerks record where a batch went, and with
supervisors correct a weigh-in; where the things went is shown to the staff and to the households
that brought some."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path
from sqlmodel import Session

from app.core.db import SessionDep
from app.identity.auth import (
    BACKDATERS,
    FIELD_STAFF,
    MANAGERS,
    STAFF_READ,
    CommunityManager,
    CommunityRole,
    CurrentPrincipal,
    Permission,
    Place,
    Principal,
    permission_signature,
)
from app.identity.models import Role
from app.places import service as places
from app.places.auth import CommunityResidentOrStaff, HouseholdMemberOrStaff
from app.recycling import service

__all__ = [
    "CommunityManager", "CommunityResidentOrStaff", "EventBackdater", "EventClerk", "EventFieldStaff", "EventManager",
    "EventResidentOrStaff", "EventStaff", "EventStaffOrParticipant", "HouseholdMemberOrStaff", "ScheduleManager",
    "WeighInCorrector",
]

# Who records where a day's batches went (去向): the clerks at the scales, and the managers.
CLERKS = MANAGERS | {Role.clerk}
CORRECTORS = MANAGERS | {Role.supervisor, Role.clerk}
SCHEDULE = Place("schedule_id", service.get_schedule)
EVENT = Place("event_id", service.get_event)
WEIGH_IN = Place("weigh_in_id", service.get_weigh_in)


class StaffOrParticipant(Permission):
    """The staff of the event's community, or a caller one of whose households weighed something in
    at the event (the event's 404 first, for everyone)."""

    roles = STAFF_READ
    admits_residents = True
    staff = CommunityRole(STAFF_READ, at=EVENT)
    __signature__ = permission_signature(session=SessionDep, principal=CurrentPrincipal, event_id=Annotated[int, Path()])

    def __call__(self, session: Session, principal: Principal, event_id: int) -> Principal:
        # Sync, like CommunityRole: it reads the database through the request's session.
        service.get_event(session, event_id)
        if service.took_part(session, principal, event_id):
            return principal
        return self.staff(session, principal, event_id=event_id)


ScheduleManager = Annotated[Principal, Depends(CommunityRole(MANAGERS, at=SCHEDULE))]
EventManager = Annotated[Principal, Depends(CommunityRole(MANAGERS, at=EVENT))]
EventStaff = Annotated[Principal, Depends(CommunityRole(STAFF_READ, at=EVENT))]
EventResidentOrStaff = Annotated[Principal, Depends(CommunityRole(STAFF_READ, at=EVENT, residents=places.lives_in))]
EventFieldStaff = Annotated[Principal, Depends(CommunityRole(FIELD_STAFF, at=EVENT))]  # they weigh in
EventClerk = Annotated[Principal, Depends(CommunityRole(CLERKS, at=EVENT))]
EventBackdater = Annotated[Principal, Depends(CommunityRole(BACKDATERS, at=EVENT))]  # 补录: the committee
EventStaffOrParticipant = Annotated[Principal, Depends(StaffOrParticipant())]
WeighInCorrector = Annotated[Principal, Depends(CommunityRole(CORRECTORS, at=WEIGH_IN))]
