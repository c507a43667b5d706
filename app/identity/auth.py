"""Who is asking, and may they act in this community. Every route depends on these.

The access token carries the user's grants and household ids, so checking a community-scoped role
costs no query; organisation and street scopes are resolved against the community's links.

Who may call a route is declared in its signature: each domain's `auth.py` names the permissions
its routes use (`CommunityManager = Annotated[Principal, Depends(community_role(MANAGERS))]`), built
from the `Permission` dependencies at the end of this module.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from operator import attrgetter
from typing import Annotated, Any

import jwt
from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session, select

from app.core.db import SessionDep
from app.core.security import decode_access_token
from app.identity import revocation
from app.identity.models import Role
from app.kit import cache
from app.kit.errors import Forbidden, NotFound, Unauthorized


@dataclass(frozen=True)
class Grant:
    role: Role
    community_id: int | None = None
    organisation_id: int | None = None
    street_id: int | None = None


@dataclass(frozen=True)
class Principal:
    user_id: int
    grants: tuple[Grant, ...] = ()
    household_ids: tuple[int, ...] = ()
    request_id: str | None = field(default=None, compare=False)

    @property
    def is_platform_admin(self) -> bool:
        return any(g.role == Role.platform_admin for g in self.grants)

    def has_role(self, *roles: Role) -> bool:
        return any(g.role in roles for g in self.grants)

    def community_grants(self, community_id: int) -> set[Role]:
        return {g.role for g in self.grants if g.community_id == community_id}


def grants_to_claim(grants: Iterable[Grant]) -> list[list]:
    return [[g.role.value, g.community_id, g.organisation_id, g.street_id] for g in grants]


def claim_to_grants(claim: list) -> tuple[Grant, ...]:
    return tuple(Grant(Role(r), c, o, s) for r, c, o, s in claim)


_bearer = HTTPBearer(auto_error=False, description="Access token from /api/v1/auth/*")


def _unauthenticated(en: str = "Sign-in required", zh: str = "请先登录") -> Unauthorized:
    return Unauthorized("unauthenticated", zh, en)


async def get_principal(  # async: on the loop, not in a worker thread (a cache read, no query)
    request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if creds is None or creds.scheme.lower() != "bearer":
        raise _unauthenticated()
    return await authenticate(creds.credentials, getattr(request.state, "request_id", None))


@lru_cache(maxsize=4096)
def _identity(token: str) -> tuple[int, tuple[Grant, ...], tuple[int, ...], int]:
    """Who a verified token speaks for, and its version: a phone sends one token with every scan for
    its 15 minutes."""
    claims = decode_access_token(token)
    grants, households = claim_to_grants(claims.get("g", [])), tuple(int(h) for h in claims.get("h", []))
    return int(claims["sub"]), grants, households, int(claims.get("v", 0))


cache.register("verified tokens", _identity.cache_clear)  # an LRU: a token's claims never change


def _verified(token: str) -> tuple[int, tuple[Grant, ...], tuple[int, ...], int]:
    try:
        decode_access_token(token)  # verified once per token string, its expiry on every use
        return _identity(token)
    except jwt.ExpiredSignatureError:
        raise Unauthorized("token_expired", "登录已过期，请重新登录", "Access token expired") from None
    except (jwt.InvalidTokenError, KeyError, ValueError, TypeError):
        raise Unauthorized("token_invalid", "登录凭证无效", "Invalid access token") from None


def principal_from_token(token: str, request_id: str | None = None) -> Principal:
    """The principal an access token speaks for; Unauthorized when it is expired or not ours. Whether
    it was revoked since is `authenticate`'s to say."""
    user_id, grants, household_ids, _version = _verified(token)
    return Principal(user_id=user_id, grants=grants, household_ids=household_ids, request_id=request_id)


async def authenticate(token: str, request_id: str | None = None) -> Principal:
    """The principal of a request's access token: Unauthorized when it is expired, not ours, or
    revoked by a logout or a role change (app.identity.revocation: a cache read, no query)."""
    user_id, grants, household_ids, version = _verified(token)
    await revocation.refuse_if_revoked(user_id, version)
    return Principal(user_id=user_id, grants=grants, household_ids=household_ids, request_id=request_id)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


# Who may do what, by kind of action, within a community.
STAFF_READ = frozenset(
    {Role.committee, Role.org_admin, Role.street_viewer, Role.supervisor, Role.volunteer, Role.clerk, Role.compost_keeper}
)
FIELD_STAFF = frozenset({Role.committee, Role.org_admin, Role.supervisor, Role.volunteer, Role.clerk, Role.compost_keeper})
MANAGERS = frozenset({Role.committee, Role.org_admin})
# Who may enter back-dated records (补录: past recycling days' weigh-ins, past rules versions): the committee.
BACKDATERS = frozenset({Role.committee})
REPORT_READERS = frozenset({Role.committee, Role.org_admin, Role.street_viewer})


def community_links(session: Session, community_id: int) -> tuple[int, set[int]] | None:
    """(street_id, organisation ids) of a community, or None when it does not exist."""
    from app.places.models import Community, OrganisationCommunity

    street_id = session.exec(select(Community.street_id).where(Community.id == community_id)).first()
    if street_id is None:
        return None
    orgs = set(
        session.exec(
            select(OrganisationCommunity.organisation_id).where(OrganisationCommunity.community_id == community_id)
        ).all()
    )
    return street_id, orgs


def may_act_in(session: Session, principal: Principal, community_id: int, roles: Iterable[Role]) -> bool:
    roles = set(roles)
    if principal.is_platform_admin:
        return True
    if principal.community_grants(community_id) & roles:
        return True
    wants_org = Role.org_admin in roles and principal.has_role(Role.org_admin)
    wants_street = Role.street_viewer in roles and principal.has_role(Role.street_viewer)
    if not (wants_org or wants_street):
        return False
    links = community_links(session, community_id)
    if links is None:
        return False
    street_id, orgs = links
    for g in principal.grants:
        if wants_org and g.role == Role.org_admin and g.organisation_id in orgs:
            return True
        if wants_street and g.role == Role.street_viewer and g.street_id == street_id:
            return True
    return False


def authorize(session: Session, principal: Principal, community_id: int, roles: Iterable[Role]) -> None:
    """Raise 403 unless the principal holds one of `roles` over `community_id`."""
    if not may_act_in(session, principal, community_id, roles):
        raise Forbidden("forbidden", "无权在该社区执行此操作", "You are not allowed to do this in this community")


def require_platform_admin(principal: Principal) -> None:
    if not principal.is_platform_admin:
        raise Forbidden("forbidden", "仅平台管理员可执行此操作", "Only a platform admin can do this")


def require_member(principal: Principal, household_id: int) -> None:
    if household_id not in principal.household_ids:
        raise NotFound("not_found", "住户不存在", "Household not found")


# --- who may call a route: permissions declared in its signature --------------------------------
#
# A route names who may call it with an Annotated type from its domain's auth.py, e.g.
#     HouseholdManager = Annotated[Principal, Depends(CommunityRole(MANAGERS, at=HOUSEHOLD))]
#     def update_household(session: SessionDep, principal: HouseholdManager, household_id: int, ...)
# The dependency finds the community from a path parameter, refuses (403) or lets the principal
# through, and the service trusts it: a row that does not exist is a 404 for everyone, before any
# role is looked at, as the services answered when they checked. tests/test_role_matrix.py reads the
# permission of every route from its dependant.
#
# Moving a domain over: in its auth.py, a Place per object its paths name (`Place("bin_id",
# service.get_bin)`) and a type per kind of caller; the routes take those types; the services drop
# the `authorize` they did for the route and keep only checks that depend on the body or the row.


def _refused() -> Forbidden:
    return Forbidden("forbidden", "无权在该社区执行此操作", "You are not allowed to do this in this community")


def permission_signature(**params: Any) -> inspect.Signature:
    """What FastAPI injects into a permission: keyword parameters with their annotations (a path
    parameter's name is chosen per route, so the signature is built, not written)."""
    return inspect.Signature([inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=a) for n, a in params.items()])


@dataclass(frozen=True)
class Place:
    """Where a route acts, named by one of its path parameters.

    `load` answers the row or raises the domain's own 404 (one query; the row stays in the session,
    so the service's own `get_…` of it costs none); `community` reads the community it belongs to,
    `household` the household (for permissions that also admit that household's members)."""

    param: str
    load: Callable[[Session, int], Any]
    community: Callable[[Any], int] = attrgetter("community_id")
    household: Callable[[Any], int] | None = None


def _get_community(session: Session, community_id: int) -> Any:
    from app.places.service import get_community  # places imports this module, not the reverse

    return get_community(session, community_id)


COMMUNITY = Place("community_id", _get_community, community=attrgetter("id"))


class Permission:
    """A dependency that answers the calling `Principal` or refuses the request.

    `roles` are the roles it admits; `admitted` is every role that may pass, with `platform_admin`
    (unless only a household's members may act) and `resident` when some residents pass (the
    household's members, or the community's residents). tests/test_role_matrix.py reads both."""

    roles: frozenset[Role]
    admits_residents: bool = False
    admits_platform_admin: bool = True

    @property
    def admitted(self) -> frozenset[Role]:
        extra = {Role.platform_admin} if self.admits_platform_admin else set()
        return self.roles | extra | ({Role.resident} if self.admits_residents else set())


@dataclass(frozen=True, eq=False)
class CommunityRole(Permission):
    """Holds one of `roles` in the community of `at` (the `community_id` path parameter by default;
    else the row another path parameter names). `members`: the members of the row's household pass
    too; `residents`: whoever that test says lives in the community passes too."""

    roles: frozenset[Role]
    at: Place = COMMUNITY
    members: bool = False
    residents: Callable[[Session, Principal, int], bool] | None = None

    def __post_init__(self) -> None:
        if self.members and self.at.household is None:
            raise ValueError(f"{self.at.param} names no household: members=True needs Place.household")
        object.__setattr__(self, "roles", frozenset(self.roles))
        object.__setattr__(self, "admits_residents", self.members or self.residents is not None)
        # Sync: it reads the database through the request's session (FastAPI shares it with the route).
        object.__setattr__(self, "__signature__", permission_signature(
            session=SessionDep, principal=CurrentPrincipal, **{self.at.param: Annotated[int, Path()]}
        ))

    def __call__(self, session: Session, principal: Principal, **path: int) -> Principal:
        row = self.at.load(session, path[self.at.param])
        if self.members and self.at.household(row) in principal.household_ids:
            return principal
        community_id = self.at.community(row)
        if may_act_in(session, principal, community_id, self.roles):
            return principal
        if self.residents is not None and self.residents(session, principal, community_id):
            return principal
        if self.members and principal.household_ids and not principal.community_grants(community_id):
            # A resident looking at a household not theirs: say so, not "not allowed in this community".
            raise Forbidden("not_your_household", "只能查看自己家的住户信息", "You can only see your own household")
        raise _refused()


@dataclass(frozen=True, eq=False)
class RoleAnywhere(Permission):
    """Holds one of `roles` in some scope. For a route whose community is only known from its body
    (a scanned code, a grant): the service checks that community once it has read it."""

    roles: frozenset[Role]
    refusal: tuple[str, str] | None = None  # (zh, en) when "not in this community" would mislead

    def __post_init__(self) -> None:
        object.__setattr__(self, "roles", frozenset(self.roles))
        object.__setattr__(self, "__signature__", permission_signature(principal=CurrentPrincipal))

    async def __call__(self, principal: Principal) -> Principal:  # no I/O: runs on the loop
        if principal.is_platform_admin or principal.has_role(*self.roles):
            return principal
        raise Forbidden("forbidden", *self.refusal) if self.refusal else _refused()


class PlatformAdminOnly(Permission):
    """Platform admins only: streets, organisations, communities."""

    roles = frozenset({Role.platform_admin})
    __signature__ = permission_signature(principal=CurrentPrincipal)

    async def __call__(self, principal: Principal) -> Principal:
        require_platform_admin(principal)
        return principal


class HouseholdMember(Permission):
    """Members of the household the path names, acting for it themselves; to anyone else it does
    not exist (404, as for a household they may not see)."""

    roles = frozenset()
    admits_residents = True
    admits_platform_admin = False
    __signature__ = permission_signature(principal=CurrentPrincipal, household_id=Annotated[int, Path()])

    async def __call__(self, principal: Principal, household_id: int) -> Principal:
        require_member(principal, household_id)
        return principal


PlatformAdmin = Annotated[Principal, Depends(PlatformAdminOnly())]
# The community-level permissions most domains use; a domain's auth.py re-exports those its routes use.
CommunityStaff = Annotated[Principal, Depends(CommunityRole(STAFF_READ))]
CommunityFieldStaff = Annotated[Principal, Depends(CommunityRole(FIELD_STAFF))]
CommunityManager = Annotated[Principal, Depends(CommunityRole(MANAGERS))]
CommunityReportReader = Annotated[Principal, Depends(CommunityRole(REPORT_READERS))]
# Managers of some community (or platform admins) create staff accounts; a grant names its community
# in the body, so the service checks that one (platform admins grant the roles above a community).
StaffAccountCreator = Annotated[Principal, Depends(RoleAnywhere(
    MANAGERS, refusal=("无权创建工作人员账号", "You are not allowed to create staff accounts")
))]
GrantIssuer = Annotated[Principal, Depends(RoleAnywhere(MANAGERS))]
