"""Write and read the audit log. Every staff change or export calls `record`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlmodel import Session, select

from app.audit.models import AuditLog
from app.kit.pagination import page_by_id

if TYPE_CHECKING:
    from app.identity.auth import Principal


def record(
    session: Session,
    *,
    actor_user_id: int | None,
    action: str,
    object_type: str,
    object_id: Any = None,
    community_id: int | None = None,
    request_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditLog:
    """Adds the row to the caller's transaction, so the audit entry commits with the change."""
    row = AuditLog(
        actor_user_id=actor_user_id,
        action=action,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        community_id=community_id,
        request_id=request_id,
        detail=detail or {},
    )
    session.add(row)
    return row


def list_for_community(session: Session, community_id: int, cursor: str | None, limit: int):
    stmt = select(AuditLog).where(AuditLog.community_id == community_id)
    return page_by_id(session, stmt, AuditLog.id, cursor, limit)


def record_act(session: Session, principal: Principal, action: str, obj: Any, community_id: int | None, **detail: Any) -> AuditLog:
    """The audit row of a change a signed-in user made to a table row `obj` (its table and id)."""
    return record(
        session,
        actor_user_id=principal.user_id,
        action=action,
        object_type=type(obj).__tablename__,
        object_id=obj.id,
        community_id=community_id,
        request_id=principal.request_id,
        detail=detail,
    )
