"""Who may read reports over which communities: one community's report readers, a street's viewers,
an organisation's admins (platform admins read all). Managers keep the thresholds and media items."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path

from app.identity.auth import (
    MANAGERS,
    CommunityManager,
    CommunityReportReader,
    CommunityRole,
    CurrentPrincipal,
    Permission,
    Place,
    Principal,
    permission_signature,
)
from app.identity.models import Role
from app.kit.errors import Forbidden
from app.places.auth import NetworkReader
from app.reports import media

__all__ = ["CommunityManager", "CommunityReportReader", "MediaItemManager", "NetworkReportReader", "OrganisationReportReader",
           "StreetReportReader"]


@dataclass(frozen=True, eq=False)
class ScopeRole(Permission):
    """Holds `role` over the street or organisation the path names: `param` is both the path
    parameter and the grant's field (street_id, organisation_id). Whether it exists is the service's
    to say, after this (so nobody learns which ids exist)."""

    role: Role
    param: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "roles", frozenset({self.role}))
        object.__setattr__(self, "__signature__", permission_signature(
            principal=CurrentPrincipal, **{self.param: Annotated[int, Path()]}
        ))

    async def __call__(self, principal: Principal, **path: int) -> Principal:  # no I/O: runs on the loop
        wanted = path[self.param]
        if principal.is_platform_admin or any(g.role == self.role and getattr(g, self.param) == wanted for g in principal.grants):
            return principal
        raise Forbidden("forbidden", "无权查看该范围的报表", "You are not allowed to read reports for this scope")


MEDIA_ITEM = Place("media_item_id", media.get_item)

# A network's reports: platform admins and the admins of its coordinating organisation (秘书处).
NetworkReportReader = NetworkReader

StreetReportReader = Annotated[Principal, Depends(ScopeRole(Role.street_viewer, "street_id"))]
OrganisationReportReader = Annotated[Principal, Depends(ScopeRole(Role.org_admin, "organisation_id"))]
# Media items are written by the committee and the NGO running the community (居委会, 社会组织).
MediaItemManager = Annotated[Principal, Depends(CommunityRole(MANAGERS, at=MEDIA_ITEM))]
