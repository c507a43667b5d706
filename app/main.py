"""The FastAPI application: the routers of every domain package, error handlers, request context."""

from __future__ import annotations

import gc
import os
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.checkins import writer
from app.checkins.fastpath import CheckinFastPath
from app.core.config import check_production_settings, get_settings
from app.core.db import close_async_pools
from app.domains import domain_modules
from app.jobs import scheduler as jobs_scheduler
from app.kit.contract import install as install_contract
from app.kit.contract import operation_id
from app.kit.errors import install_error_handlers
from app.kit.guard import InputGuard
from app.kit.headers import page_policy
from app.kit.idempotency import IdempotencyKeys
from app.kit.observability import RequestContextMiddleware, configure_logging

DESCRIPTION = """
减废存折 — the backend of the household waste-reduction passbook mini-program.

Errors share one shape: `{"error": {"code", "message", "field", "request_id"}}`; messages are in
Chinese unless the request sends `Accept-Language: en`. Lists, periods, names and formats follow one
convention each (docs/api.md): pages of `{items, next_cursor}`, `start`/`end` local dates, the same
field name in and out, `?format=` for another representation.
"""


@asynccontextmanager
async def lifespan(_app: FastAPI):
    _freeze_startup_objects()
    scheduler = jobs_scheduler.start_in_service()
    yield
    if scheduler is not None:
        await scheduler.stop()
    writer.forget_loop()
    await close_async_pools()


def _freeze_startup_objects() -> None:
    """Keep what start-up built (modules, models, routes: ~200,000 objects that live as long as the
    process) out of the collector's full passes. Each full pass over them cost ~120 ms of CPU, and a
    1,000-scan batch allocates enough to set one off every few batches; after the freeze a full pass
    looks only at objects made since. Once per process."""
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()


def create_app() -> FastAPI:
    settings = get_settings()
    configure_logging(settings.log_level)
    otel = settings.opentelemetry
    check_production_settings(settings)
    app = FastAPI(
        title="Jianfei passbook API", version="1.0.0", description=DESCRIPTION, lifespan=lifespan,
        telemetry={"tracing": otel, "metrics": otel, "logs": otel, "operation_spans": otel},
        docs_url=None, redoc_url=None, generate_unique_id_function=operation_id,
    )
    install_error_handlers(app)
    install_contract(app)
    if settings.docs_enabled:
        _serve_docs(app)
    for module in domain_modules("routes"):
        app.include_router(module.router)
    # Innermost: one retry convention for the writes without a key of their own (app.kit.idempotency),
    # then the lean twin of the bin-side scan route (see its module), behind the guard.
    app.add_middleware(IdempotencyKeys)
    app.add_middleware(CheckinFastPath)
    app.add_middleware(InputGuard, max_body_bytes=settings.max_body_bytes, max_upload_bytes=settings.max_upload_bytes)
    app.add_middleware(RequestContextMiddleware)
    return app


def _serve_docs(app: FastAPI) -> None:
    """Swagger UI at /docs with its assets served by the service (the swagger-ui-bundle package),
    never from a CDN: it works offline and from mainland China."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles
    from swagger_ui_bundle import swagger_ui_path

    app.mount("/docs/assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=app.openapi_url, title=f"{app.title} — docs", swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css", swagger_favicon_url="/docs/assets/favicon-32x32.png",
        )
        html = page.body.decode()
        return HTMLResponse(html, headers={"Content-Security-Policy": page_policy(html)})


app = create_app()


def behind_proxy():
    """What the container serves (scripts/docker-entrypoint.sh, `granian --factory`): the app, with the
    client address and scheme taken from X-Forwarded-For/-Proto when the peer is a trusted proxy
    (FORWARDED_ALLOW_IPS, comma-separated; 127.0.0.1 by default)."""
    from granian.utils.proxies import wrap_asgi_with_proxy_headers

    return wrap_asgi_with_proxy_headers(app, os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"))
