"""What a report covers: one community, a street, an organisation's communities, or a network's (the
communities its partner organisations run), and its period.

A scope resolves to the community ids it covers; who may read it is declared by the routes
(reports/auth.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from app.core.config import get_settings
from app.core.db import utcnow
from app.kit.errors import BadRequest, not_found
from app.places.models import Community, Organisation, OrganisationCommunity, Street
from app.places.service import get_community, get_network, network_partner_ids, organisation_community_ids


class ScopeKind(StrEnum):
    community = "community"
    street = "street"
    organisation = "organisation"
    network = "network"


SCOPE_ZH = {ScopeKind.community: "社区", ScopeKind.street: "街道", ScopeKind.organisation: "社会组织", ScopeKind.network: "网络"}


@dataclass(frozen=True)
class Scope:
    kind: ScopeKind
    id: int
    name: str
    community_ids: tuple[int, ...]
    tz: ZoneInfo
    # The community an audit row is filed under (None for street/organisation scopes).
    audit_community_id: int | None
    # The organisations the scope is about: the organisation itself, or a network's partners (never
    # the network). Empty for a community or a street: their organisations are those linked to them.
    organisation_ids: tuple[int, ...] = ()


def resolve(session: Session, kind: ScopeKind, scope_id: int) -> Scope:
    """The scope's communities. Who may read them was checked before: by the route (reports/auth.py)
    or, on the command line, by whoever may run it."""
    if kind == ScopeKind.community:
        community = get_community(session, scope_id)
        return Scope(kind, community.id, community.name, (community.id,), ZoneInfo(community.timezone), community.id)
    default_tz = ZoneInfo(get_settings().timezone)
    if kind == ScopeKind.street:
        street = session.get(Street, scope_id)
        if street is None:
            raise not_found("街道", "Street", "street_id")
        ids = session.exec(select(Community.id).where(Community.street_id == scope_id).order_by(Community.id)).all()
        return Scope(kind, street.id, street.name, tuple(ids), default_tz, None)
    if kind == ScopeKind.network:
        network = get_network(session, scope_id)
        partners = tuple(network_partner_ids(session, network.id))
        ids = organisation_community_ids(session, list(partners))
        return Scope(kind, network.id, network.name, tuple(ids), default_tz, None, partners)
    org = session.get(Organisation, scope_id)
    if org is None:
        raise not_found("社会组织", "Organisation", "organisation_id")
    ids = session.exec(
        select(OrganisationCommunity.community_id)
        .where(OrganisationCommunity.organisation_id == scope_id)
        .order_by(OrganisationCommunity.community_id)
    ).all()
    return Scope(kind, org.id, org.name, tuple(ids), default_tz, None, (org.id,))


@dataclass(frozen=True)
class Period:
    start: date  # first local day, inclusive
    end: date  # last local day, inclusive

    def bounds(self, tz: ZoneInfo) -> tuple[datetime, datetime]:
        """[from, to) as aware instants for the local calendar days."""
        return datetime.combine(self.start, time.min, tz), datetime.combine(self.end + timedelta(days=1), time.min, tz)

    @property
    def label(self) -> str:
        return f"{self.start.isoformat()} 至 {self.end.isoformat()}"


def month_period(month: str) -> Period:
    try:
        year, mon = (int(x) for x in month.split("-"))
        start = date(year, mon, 1)
    except (ValueError, TypeError):
        raise BadRequest("invalid_month", "月份格式应为 YYYY-MM", "Month must be YYYY-MM", "month") from None
    nxt = date(year + (mon == 12), mon % 12 + 1, 1)
    return Period(start, nxt - timedelta(days=1))


def period_of(month: str | None, start: date | None, end: date | None, tz: ZoneInfo) -> Period:
    """A month (YYYY-MM), or start/end days, or by default the current local month."""
    if month and (start or end):
        raise BadRequest("invalid_period", "请只给出月份或起止日期之一", "Give either month or start/end, not both", "month")
    if month:
        return month_period(month)
    today = utcnow().astimezone(tz).date()
    if start is None and end is None:
        return month_period(today.strftime("%Y-%m"))
    start = start or date(today.year, today.month, 1)
    end = end or today
    if end < start:
        raise BadRequest("invalid_period", "结束日期早于开始日期", "End date is before start date", "end")
    if (end - start).days > 3660:
        raise BadRequest("invalid_period", "统计区间不能超过10年", "The period cannot exceed 10 years", "end")
    return Period(start, end)
