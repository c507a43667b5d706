"""The FastAPI application: routers of every domain, error handlers, request context."""

from __future__ import annotations

from fastapi import FastAPI

from app.core.config import get_settings
from app.identity.routes import router as identity_router
from app.kit.errors import install_error_handlers
from app.kit.observability import RequestContextMiddleware, configure_logging
from app.ops.routes import router as ops_router
from app.places.routes import router as places_router
from app.roster.routes import router as roster_router

DESCRIPTION = """
减废存折 — the backend of the household waste-reduction passbook mini-program.

Errors share one shape: `{"error": {"code", "message", "field", "request_id"}}`; messages are in
Chinese unless the request sends `Accept-Language: en`.
"""


def create_app() -> FastAPI:
    settings = get_settings()
    configure_logging(settings.log_level)
    app = FastAPI(title="Jianfei passbook API", version="1.0.0", description=DESCRIPTION)
    install_error_handlers(app)
    app.include_router(ops_router)
    app.include_router(identity_router)
    app.include_router(places_router)
    app.include_router(roster_router)
    app.add_middleware(RequestContextMiddleware)
    return app


app = create_app()
