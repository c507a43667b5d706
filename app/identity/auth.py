"""Who is asking, and may they act in this community. Every route depends on these.

The access token carries the user's grants and household ids, so checking a community-scoped role
costs no query; organisation and street scopes are resolved against the community's links.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Annotated

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session, select

from app.core.security import decode_access_token
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


async def get_principal(  # async: no I/O, so FastAPI runs it on the loop, not in a worker thread
    request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if creds is None or creds.scheme.lower() != "bearer":
        raise _unauthenticated()
    return principal_from_token(creds.credentials, getattr(request.state, "request_id", None))


@lru_cache(maxsize=4096)
def _identity(token: str) -> tuple[int, tuple[Grant, ...], tuple[int, ...]]:
    """Who a verified token speaks for: a phone sends one token with every scan for its 15 minutes."""
    claims = decode_access_token(token)
    return int(claims["sub"]), claim_to_grants(claims.get("g", [])), tuple(int(h) for h in claims.get("h", []))


cache.register("verified tokens", _identity.cache_clear)  # an LRU: a token's claims never change


def principal_from_token(token: str, request_id: str | None = None) -> Principal:
    """The principal an access token speaks for; Unauthorized when it is expired or not ours."""
    try:
        decode_access_token(token)  # verified once per token string, its expiry on every use
        user_id, grants, household_ids = _identity(token)
        return Principal(user_id=user_id, grants=grants, household_ids=household_ids, request_id=request_id)
    except jwt.ExpiredSignatureError:
        raise Unauthorized("token_expired", "登录已过期，请重新登录", "Access token expired") from None
    except (jwt.InvalidTokenError, KeyError, ValueError, TypeError):
        raise Unauthorized("token_invalid", "登录凭证无效", "Invalid access token") from None


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


# Who may do what, by kind of action, within a community.
STAFF_READ = frozenset(
    {Role.committee, Role.org_admin, Role.street_viewer, Role.supervisor, Role.volunteer, Role.clerk, Role.compost_keeper}
)
FIELD_STAFF = frozenset({Role.committee, Role.org_admin, Role.supervisor, Role.volunteer, Role.clerk, Role.compost_keeper})
MANAGERS = frozenset({Role.committee, Role.org_admin})
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
