"""Write and read the audit log. Every staff change or export calls `record`."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from app.audit.models import AuditLog
from app.kit.pagination import page_by_id


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
