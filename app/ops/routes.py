"""/healthz, /readyz, /metrics, and the community audit log."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.audit import service as audit
from app.audit.models import AuditLogPublic
from app.core.config import get_settings
from app.core.db import SessionDep, get_engine
from app.core.migrate import at_head
from app.core.security import same_secret
from app.identity.auth import CommunityManager
from app.kit.errors import NotFound, Unauthorized, error_responses
from app.kit.observability import metrics_payload
from app.kit.pagination import DEFAULT_LIMIT, Cursor, Limit, Page

router = APIRouter(tags=["ops"])


@router.get("/healthz", summary="Process is up")
def healthz():
    return {"status": "ok"}


@router.get("/readyz", summary="Database reachable and migrations at head", responses={503: {"description": "Not ready"}})
def readyz():
    engine = get_engine()
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        migrated = at_head(engine)
    except Exception:  # noqa: BLE001 - any failure means not ready
        return JSONResponse({"status": "unavailable", "database": False, "migrations": False}, status_code=503)
    if not migrated:
        return JSONResponse({"status": "migrating", "database": True, "migrations": False}, status_code=503)
    return {"status": "ready", "database": True, "migrations": True}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(request: Request):
    """Open in development; with METRICS_TOKEN set, for that bearer token only; in production without
    one, off (404)."""
    settings = get_settings()
    if settings.metrics_token:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not same_secret(settings.metrics_token, token):
            raise Unauthorized("unauthenticated", "需要监控令牌", "The metrics token is required")
    elif settings.is_production:
        raise NotFound("not_found", "资源不存在", "Not found")
    body, content_type = metrics_payload()
    return Response(content=body, media_type=content_type)


@router.get(
    "/api/v1/communities/{community_id}/audit",
    summary="Audit log of a community (who changed or exported what)",
    response_model=Page[AuditLogPublic],
    responses=error_responses(400, 401, 403, 404, 422),
    tags=["audit"],
)
def community_audit(
    session: SessionDep,
    principal: CommunityManager,
    community_id: int,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
):
    items, next_cursor = audit.list_for_community(session, community_id, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)
