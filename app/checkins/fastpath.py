"""The bin-side scan without the framework: a lean ASGI twin of `POST /communities/{id}/checkins`.

Volunteers scan door plates at two rush hours a day, and this one route carries nearly all of the
write traffic. Behind FastAPI a scan paid for routing, dependency solving, request and response
model handling and three layers of middleware, about a third of its CPU (bench/profiles). This
middleware sits inside the request-id/metrics and input-guard middlewares, recognises the route by
its path, and answers a request whose bearer token and body are valid with the very service call
the route makes (`service.answer_one`), rendering errors in the one error shape. Anything it does
not fully understand (no or malformed token header, a body that fails validation, another content
type, a path it does not match exactly) goes on to FastAPI, which answers it as documented — so the
answers are the route's, byte for byte in content, and the route stays the documented contract.
"""

from __future__ import annotations

from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from app.checkins import service
from app.checkins.auth import may_scan
from app.checkins.models import ScanIn
from app.core.db import unavailable
from app.identity.auth import authenticate
from app.kit.errors import DomainError, error_response
from app.kit.guard import replay_body

_PREFIX = "/api/v1/communities/"
_SUFFIX = "/checkins"
_JSON_HEADERS = [(b"content-type", b"application/json")]


def _community_id(scope: Scope) -> int | None:
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    path: str = scope["path"]
    if not (path.startswith(_PREFIX) and path.endswith(_SUFFIX)):
        return None
    middle = path[len(_PREFIX) : -len(_SUFFIX)]
    return int(middle) if middle.isascii() and middle.isdigit() and len(middle) <= 18 else None


def _bearer_and_json(scope: Scope) -> str | None:
    """The bearer token, when the request sends exactly one and a JSON body; else None."""
    token, is_json = None, False
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() != "bearer" or not credentials or token is not None:
                return None
            token = credentials
        elif name == b"content-type":
            is_json = value.startswith(b"application/json")
    return token if is_json else None


class CheckinFastPath:
    def __init__(self, app: ASGIApp):
        from app.checkins.routes import router

        self.app = app
        # The FastAPI route it stands for: metrics and request logs label its requests with that path.
        self.route = next(r for r in router.routes if getattr(r, "name", None) == "record_checkin")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        community_id = _community_id(scope)
        token = _bearer_and_json(scope) if community_id is not None else None
        if token is None:
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            more = message.get("more_body", False)
        request_id = scope.get("state", {}).get("request_id")
        try:
            principal = await authenticate(token, request_id)
            try:
                scan = ScanIn.model_validate_json(body)
            except ValidationError:
                await self.app(scope, replay_body(body, receive), send)  # FastAPI words the validation error
                return
            scope["route"] = self.route
            await may_scan(principal, community_id)  # the route's permission (app.checkins.auth)
            status, result = await service.answer_one(principal, community_id, scan)
        except Exception as exc:
            # A domain error, or a database busy or down (503, as the app's handlers answer it);
            # anything else is the app's to answer (a 500).
            error = exc if isinstance(exc, DomainError) else unavailable(exc)
            if error is None:
                raise
            response = error_response(Request(scope), error.status_code, error.code, error.zh, error.en, error.field, **error.extra)
            await response(scope, receive, send)
            return
        payload = result.__pydantic_serializer__.to_json(result)
        await send({
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-length", str(len(payload)).encode()), *_JSON_HEADERS],
        })
        await send({"type": "http.response.body", "body": payload})

