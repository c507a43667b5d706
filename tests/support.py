"""Factories for tests: a whole community with staff of every role, built through the services.

Users get tokens from the token service directly (sign-in itself is tested in tests/identity);
everything they then do goes through the HTTP API.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.core.config import get_settings
from app.core.db import utcnow
from app.core.security import hash_password, mask_phone, phone_hash
from app.identity.models import Role, RoleGrant, User
from app.identity.service import issue_tokens
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

T = TypeVar("T")
TOKEN_MARGIN = timedelta(minutes=1)  # a token handed out has at least this long to live
_seq = itertools.count(1)


def auth(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


@dataclass
class World:
    client: TestClient
    engine: Engine
    street: Street
    community: Community
    organisation: Organisation
    compound: Compound
    buildings: list[Building]
    households: list[Household]
    tokens: dict[str, str] = field(default_factory=dict)
    users: dict[str, int] = field(default_factory=dict)
    phones: dict[int, str] = field(default_factory=dict)
    issued: dict[str, datetime] = field(default_factory=dict)  # when each token was issued, by the app's clock
    _issuing: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def build(cls, client: TestClient, engine: Engine, households_per_building: int = 4) -> World:
        n = next(_seq)
        tag = uuid.uuid4().hex[:6]
        with Session(engine, expire_on_commit=False) as s:
            street = Street(city="苏州市", district="昆山市", name=f"测试街道{n}-{tag}")
            s.add(street)
            s.flush()
            community = Community(name=f"测试社区{n}", street_id=street.id)
            org = Organisation(name=f"测试机构{n}")
            s.add_all([community, org])
            s.flush()
            s.add(OrganisationCommunity(organisation_id=org.id, community_id=community.id))
            compound = Compound(name="一期", community_id=community.id)
            s.add(compound)
            s.flush()
            buildings, households, phones = [], [], {}
            for b in (1, 2):
                building = Building(name=f"{b}号楼", compound_id=compound.id, community_id=community.id)
                s.add(building)
                s.flush()
                buildings.append(building)
                for i in range(households_per_building):
                    phone = f"139{n % 10000:04d}{b}{i:03d}"
                    h = Household(
                        community_id=community.id,
                        building_id=building.id,
                        unit="1",
                        door_plate=f"{i + 1}01",
                        members=3,
                        public_code=new_public_code(s),
                        phone_hash=phone_hash(phone),
                        phone_masked=mask_phone(phone),
                    )
                    s.add(h)
                    s.flush()
                    households.append(h)
                    phones[h.id] = phone
            s.commit()
            world = cls(client, engine, street, community, org, compound, buildings, households, phones=phones)
            for role in Role:
                if role == Role.resident:
                    continue
                world._add_user(s, role.value, role)
            world._add_resident(s, "resident", households[0].id)
        return world

    def _add_user(self, s: Session, name: str, role: Role) -> None:
        user = User(username=f"{name}-{uuid.uuid4().hex[:10]}", display_name=name)
        s.add(user)
        s.flush()
        scope: dict[str, int] = {}
        if role == Role.org_admin:
            scope["organisation_id"] = self.organisation.id
        elif role == Role.street_viewer:
            scope["street_id"] = self.street.id
        elif role != Role.platform_admin:
            scope["community_id"] = self.community.id
        s.add(RoleGrant(user_id=user.id, role=role, **scope))
        s.commit()
        self.users[name] = user.id
        self._issue(s, name, user)

    def _issue(self, s: Session, name: str, user: User) -> None:
        self.issued[name] = utcnow()
        self.tokens[name] = issue_tokens(s, user).access_token

    def _add_resident(self, s: Session, name: str, household_id: int) -> None:
        from app.identity.models import HouseholdMember

        user = User(wechat_openid=f"openid-{uuid.uuid4().hex}", display_name=name)
        s.add(user)
        s.flush()
        s.add(HouseholdMember(user_id=user.id, household_id=household_id))
        s.commit()
        self.users[name] = user.id
        self._issue(s, name, user)

    def bystander(self, role: Role | None = Role.volunteer) -> int:
        """The id of a new user holding `role` in the community (None: no role), for tests that grant
        or revoke roles: a role change ends the user's access tokens, and the world's own users must
        keep theirs."""
        with Session(self.engine) as s:
            user = User(username=f"bystander-{uuid.uuid4().hex[:10]}", display_name="bystander")
            s.add(user)
            s.flush()
            if role is not None:
                s.add(RoleGrant(user_id=user.id, role=role, community_id=self.community.id))
            s.commit()
            return user.id

    def h(self, role: str, **extra: str) -> dict[str, str]:
        return auth(self.token_for(role), **extra)

    def token_for(self, name: str) -> str:
        """The user's access token, issued again when the test has moved the clock out of its life."""
        with self._issuing:  # threads of one test (`race`) ask at once: one issues, none gets the old token
            issued = self.issued[name]
            if not issued <= utcnow() < issued + timedelta(minutes=get_settings().access_token_minutes) - TOKEN_MARGIN:
                with Session(self.engine, expire_on_commit=False) as s:
                    self._issue(s, name, s.get(User, self.users[name]))
            return self.tokens[name]


def race(*calls: Callable[[], T]) -> list[T]:
    """Run each call in a thread of its own, all released at one instant; their results in order
    (the first exception raised, if any, is raised here once every thread has ended)."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)
    errors: list[BaseException] = []

    def run(n: int) -> None:
        barrier.wait()
        try:
            results[n] = calls[n]()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


# What a production start needs besides its secrets: WeChat settings that are not the development
# defaults (production refuses those); the address is never called by these tests.
PRODUCTION_WECHAT = {"WECHAT_APP_ID": "wx-production-test", "WECHAT_APP_SECRET": "production-test-secret",
                     "WECHAT_API_BASE": "https://api.weixin.qq.com"}


PASSWORD = "test-pass-2026"  # of the staff made by staff_with_password


def staff_with_password(engine: Engine, role: Role, community_id: int | None, name: str = "staff", *more: dict) -> str:
    """A staff member holding `role` in the community (none without one) and the further grants `more`
    (each a RoleGrant's fields), who signs in with PASSWORD (a browser or a Node program signs in as it);
    their username."""
    username = f"{name}-{uuid.uuid4().hex[:8]}"
    with Session(engine) as s:
        user = User(username=username, display_name=name, password_hash=hash_password(PASSWORD))
        s.add(user)
        s.flush()
        if community_id is not None:
            s.add(RoleGrant(user_id=user.id, role=role, community_id=community_id))
        s.add_all(RoleGrant(user_id=user.id, **grant) for grant in more)
        s.commit()
    return username


def backdating(held_on: str, reason: str = "补录活动签到表") -> dict[str, str]:
    """What an activity held on local day `held_on` needs to be recorded today: nothing within 3 days, the
    committee's reason (补录) before that (app.activities.service.LATE_DAYS)."""
    from zoneinfo import ZoneInfo

    from app.activities.models import LATE_DAYS

    today = utcnow().astimezone(ZoneInfo("Asia/Shanghai")).date()
    late = datetime.fromisoformat(held_on).date() < today - timedelta(days=LATE_DAYS)
    return {"backdate_reason": reason} if late else {}
