"""Write a planned street into the database: places, staff of every role, residents bound to households.

Households go through the places bulk writer (the same set-based path as roster import), so a
60,000-household street takes seconds. Staff share one password hash (the demo password), computed
once: argon2 per account would dominate the run. The days of activity (check-ins, compost, recycling
days, redemptions) are replayed afterwards through those domains' services: see activity.py.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import insert
from sqlmodel import Session, select

from app.core.db import utcnow
from app.core.security import hash_password, normalize_phone
from app.generator.plan import StreetPlan
from app.identity.models import HouseholdMember, Role, RoleGrant, User
from app.kit.errors import Conflict
from app.places import service as places
from app.places.models import (
    Building,
    Community,
    Compound,
    Household,
    Organisation,
    OrganisationCommunity,
    Street,
)

DEMO_PASSWORD = "demo-pass-2026"
STAFF_PER_COMMUNITY = (
    ("committee", Role.committee, 1),
    ("volunteer", Role.volunteer, 4),
    ("supervisor", Role.supervisor, 1),
    ("clerk", Role.clerk, 1),
    ("keeper", Role.compost_keeper, 1),
)

Progress = Callable[[str, int, int], None]


@dataclass
class CommunityBuilt:
    id: int
    name: str
    households: int
    residents: int
    staff: dict[str, list[str]] = field(default_factory=dict)  # role → usernames


@dataclass
class StreetBuilt:
    street_id: int
    organisation_id: int
    communities: list[CommunityBuilt]
    org_admin: str
    street_viewer: str

    @property
    def households(self) -> int:
        return sum(c.households for c in self.communities)


def _staff(session: Session, username: str, password_hash: str, role: Role, **scope: int) -> str:
    user = User(username=username, password_hash=password_hash, display_name=username)
    session.add(user)
    session.flush()
    session.add(RoleGrant(user_id=user.id, role=role, **scope))
    return username


def _residents(session: Session, rng: random.Random, seed: int, household_ids: list[int], share: float) -> int:
    """WeChat users bound to a share of the households (one or two family members each)."""
    chosen = [h for h in household_ids if rng.random() < share]
    if not chosen:
        return 0
    users = []
    for hid in chosen:
        for member in range(1 if rng.random() < 0.7 else 2):
            users.append({"wechat_openid": f"demo{seed}-{hid}-{member}", "display_name": "", "is_active": True,
                          "username": None, "password_hash": None, "wechat_unionid": None,
                          "phone_hash": None, "phone_masked": None, "created_at": utcnow()})
    for i in range(0, len(users), 2000):
        session.execute(insert(User), users[i : i + 2000])
    ids: dict[str, int] = {}
    openids = [u["wechat_openid"] for u in users]
    for i in range(0, len(openids), 1000):
        ids.update(session.exec(select(User.wechat_openid, User.id).where(User.wechat_openid.in_(openids[i : i + 1000]))).all())
    members = [
        {"user_id": ids[u["wechat_openid"]], "household_id": int(u["wechat_openid"].split("-")[1]), "created_at": utcnow()}
        for u in users
    ]
    for i in range(0, len(members), 2000):
        session.execute(insert(HouseholdMember), members[i : i + 2000])
    return len(users)


def build_street(session: Session, plan: StreetPlan, *, resident_share: float = 0.4, progress: Progress | None = None) -> StreetBuilt:
    """Create everything in `plan`; one commit per community so a large street shows progress."""
    if session.exec(
        select(Street.id).where(Street.city == plan.city, Street.district == plan.district, Street.name == plan.name)
    ).first():
        raise Conflict(
            "already_generated",
            f"种子 {plan.seed} 的演示街道已存在，请换一个种子",
            f"The demo street of seed {plan.seed} already exists: use another seed",
            "seed",
        )
    rng = random.Random(plan.seed * 7919 + 1)
    password_hash = hash_password(DEMO_PASSWORD)
    prefix = f"demo{plan.seed}"
    street = Street(city=plan.city, district=plan.district, name=plan.name)
    org = Organisation(name=plan.organisation)
    session.add_all([street, org])
    session.flush()
    org_admin = _staff(session, f"{prefix}-ngo", password_hash, Role.org_admin, organisation_id=org.id)
    street_viewer = _staff(session, f"{prefix}-street", password_hash, Role.street_viewer, street_id=street.id)
    session.commit()

    built: list[CommunityBuilt] = []
    total = plan.households
    done = 0
    for i, cplan in enumerate(plan.communities, start=1):
        community = Community(name=cplan.name, street_id=street.id)
        session.add(community)
        session.flush()
        session.add(OrganisationCommunity(organisation_id=org.id, community_id=community.id))
        creates = []
        for kplan in cplan.compounds:
            compound = Compound(name=kplan.name, community_id=community.id)
            session.add(compound)
            session.flush()
            for bplan in kplan.buildings:
                building = Building(name=bplan.name, compound_id=compound.id, community_id=community.id)
                session.add(building)
                session.flush()
                for h in bplan.households:
                    phone = places.phone_columns(normalize_phone(h.phone)) if h.phone else {"phone_hash": None, "phone_masked": None}
                    creates.append({"building_id": building.id, "unit": h.unit, "door_plate": h.door_plate,
                                    "members": h.members, "public_code": h.public_code, **phone})
        places.write_households_bulk(session, community.id, creates, [])
        household_ids = list(session.exec(select(Household.id).where(Household.community_id == community.id).order_by(Household.id)).all())
        staff: dict[str, list[str]] = {}
        for label, role, count in STAFF_PER_COMMUNITY:
            staff[label] = [
                _staff(session, f"{prefix}-c{i}-{label}{n if count > 1 else ''}", password_hash, role, community_id=community.id)
                for n in range(1, count + 1)
            ]
        residents = _residents(session, rng, plan.seed, household_ids, resident_share)
        session.commit()
        built.append(CommunityBuilt(id=community.id, name=community.name, households=len(household_ids), residents=residents, staff=staff))
        done += len(household_ids)
        if progress:
            progress("structure", done, total)
    return StreetBuilt(street_id=street.id, organisation_id=org.id, communities=built, org_admin=org_admin, street_viewer=street_viewer)
