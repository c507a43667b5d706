"""The demo community seeded on first start, so that /docs can be tried at once.

Idempotent: does nothing when the demo street already exists.
"""

from __future__ import annotations

from datetime import time

from sqlmodel import Session, select

from app.checkins.models import DropWindow, Station
from app.core.security import mask_phone, phone_hash
from app.identity import service as identity
from app.identity.models import Role, RoleGrant, StaffCreate
from app.places.models import (
    Building,
    Community,
    Compound,
    Household,
    Organisation,
    OrganisationCommunity,
    Street,
)
from app.places.service import new_public_code

DEMO_PASSWORD = "demo-pass-2026"
DEMO_USERS = {
    "demo-admin": Role.platform_admin,
    "demo-committee": Role.committee,
    "demo-volunteer": Role.volunteer,
    "demo-clerk": Role.clerk,
    "demo-keeper": Role.compost_keeper,
    "demo-ngo": Role.org_admin,
    "demo-street": Role.street_viewer,
}


def seed_demo(session: Session) -> Community | None:
    if session.exec(select(Street).where(Street.name == "示范街道")).first() is not None:
        return None
    street = Street(city="苏州市", district="昆山市", name="示范街道")
    session.add(street)
    session.flush()
    community = Community(name="玫瑰里社区", street_id=street.id)
    org = Organisation(name="绿色家园环保服务中心")
    session.add_all([community, org])
    session.flush()
    session.add(OrganisationCommunity(organisation_id=org.id, community_id=community.id))
    compound = Compound(name="玫瑰里小区", community_id=community.id)
    session.add(compound)
    session.flush()
    # A bin-side station and the usual drop-off windows (定时定点, local time): a scan can be tried at once.
    session.add(Station(community_id=community.id, compound_id=compound.id, name="1号楼东侧", location="1号楼东侧垃圾房"))
    session.add(DropWindow(community_id=community.id, name="早间", start_time=time(7), end_time=time(9)))
    session.add(DropWindow(community_id=community.id, name="晚间", start_time=time(18), end_time=time(21)))
    for b in range(1, 4):
        building = Building(name=f"{b}号楼", compound_id=compound.id, community_id=community.id)
        session.add(building)
        session.flush()
        for floor in range(1, 5):
            for door in (1, 2):
                plate = f"{floor}0{door}"
                phone = f"1380000{b}{floor}{door}{door}"[:11]
                session.add(
                    Household(
                        community_id=community.id,
                        building_id=building.id,
                        unit="1",
                        door_plate=plate,
                        members=2 + (floor + door) % 3,
                        public_code=new_public_code(session),
                        phone_hash=phone_hash(phone),
                        phone_masked=mask_phone(phone),
                    )
                )
    session.commit()
    for username, role in DEMO_USERS.items():
        user = identity.create_staff_user(session, StaffCreate(username=username, password=DEMO_PASSWORD, display_name=username))
        scope: dict[str, int | None] = {}
        if role in (Role.committee, Role.volunteer, Role.clerk, Role.compost_keeper):
            scope["community_id"] = community.id
        elif role == Role.org_admin:
            scope["organisation_id"] = org.id
        elif role == Role.street_viewer:
            scope["street_id"] = street.id
        session.add(RoleGrant(user_id=user.id, role=role, **scope))
    session.commit()
    return community
