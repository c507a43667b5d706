"""HTTP routes: a resident's subscribe-message subscriptions, and the reminder outbox for staff."""

from __future__ import annotations

from fastapi import APIRouter

from app.core.db import SessionDep
from app.identity.auth import CommunityReportReader, CurrentPrincipal
from app.kit.errors import error_responses
from app.kit.pagination import DEFAULT_LIMIT, Cursor, Limit, Page
from app.reminders import service
from app.reminders.models import OutboxPublic, OutboxStatus, SubscriptionPublic, SubscriptionReportIn

router = APIRouter(prefix="/api/v1", tags=["reminders"])


@router.get(
    "/me/subscriptions", summary="My reminder subscriptions: template ids to request and messages left",
    description="One row per reminder kind (a short fixed list): one page, `next_cursor` always null.",
    response_model=Page[SubscriptionPublic], responses=error_responses(401),
)
def my_subscriptions(session: SessionDep, principal: CurrentPrincipal):
    return Page(items=service.my_subscriptions(session, principal))


@router.post(
    "/me/subscriptions", summary="Report what wx.requestSubscribeMessage answered (each accept allows one reminder)",
    description="Answers my subscriptions after the report, as `GET /me/subscriptions` does.",
    response_model=Page[SubscriptionPublic], responses=error_responses(400, 401, 422),
)
def report_subscriptions(session: SessionDep, principal: CurrentPrincipal, data: SubscriptionReportIn):
    return Page(items=service.record_subscriptions(session, principal, data))


@router.get(
    "/communities/{community_id}/reminders", summary="Reminder outbox of a community: counts by kind and status, and the reminders",
    response_model=OutboxPublic, responses=error_responses(400, 401, 403, 404, 422),
)
def list_outbox(
    session: SessionDep, principal: CommunityReportReader, community_id: int,
    status: OutboxStatus | None = None, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT,
):
    return service.outbox(session, community_id, status, cursor, limit)
